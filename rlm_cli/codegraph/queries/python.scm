; Python: definitions, calls and imports, in the style of tree-sitter tags queries.
; A function directly inside a class is reported as a method by the indexer.

(class_definition
  name: (identifier) @name) @definition.class

(function_definition
  name: (identifier) @name) @definition.function

(call
  function: [
    (identifier) @reference.call
    (attribute attribute: (identifier) @reference.call)
    (parenthesized_expression (identifier) @reference.call)
    (parenthesized_expression (attribute attribute: (identifier) @reference.call))
  ])

(import_statement
  name: [
    (dotted_name) @import.module
    (aliased_import name: (dotted_name) @import.module)
  ]) @import

(import_from_statement
  module_name: (_) @import.module) @import

(import_from_statement
  name: [
    (dotted_name) @import.name
    (aliased_import name: (dotted_name) @import.name)
  ]) @import

(future_import_statement
  name: [
    (dotted_name) @import.name
    (aliased_import name: (dotted_name) @import.name)
  ]) @import
