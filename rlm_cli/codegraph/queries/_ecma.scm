; Shared by the JavaScript, TypeScript and TSX queries (not a language of its own).

(class_declaration
  name: (_) @name) @definition.class

(class
  name: (_) @name) @definition.class

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(method_definition
  name: (_) @name) @definition.method

(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

(assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)]) @definition.function

(pair
  key: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.function

(call_expression
  function: [
    (identifier) @reference.call
    (member_expression property: (property_identifier) @reference.call)
  ])

(new_expression
  constructor: [
    (identifier) @reference.call
    (member_expression property: (property_identifier) @reference.call)
  ])

(import_statement
  source: (string) @import.module) @import

(export_statement
  source: (string) @import.module) @import

(call_expression
  function: (identifier) @_require
  arguments: (arguments . (string) @import.module .)
  (#eq? @_require "require")) @import

(call_expression
  function: (import)
  arguments: (arguments . (string) @import.module)) @import
