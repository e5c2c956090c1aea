; Bash: functions, the commands a script runs, and the files it sources.

(function_definition
  name: (word) @name) @definition.function

(command
  name: (command_name (word) @_source)
  argument: (_) @import.module
  (#any-of? @_source "source" "."))  @import

(command
  name: (command_name (word) @reference.call))
