; Ruby: `def` inside a class or module is a method; `def self.x` is a method too.

(class
  name: [
    (constant) @name
    (scope_resolution name: (_) @name)
  ]) @definition.class

(module
  name: [
    (constant) @name
    (scope_resolution name: (_) @name)
  ]) @definition.module

(method
  name: (_) @name) @definition.function

(singleton_method
  name: (_) @name) @definition.method

(call
  method: (identifier) @_method
  arguments: (argument_list . (string (string_content) @import.module))
  (#any-of? @_method "require" "require_relative" "load")) @import

(call
  method: [(identifier) (constant)] @reference.call)
