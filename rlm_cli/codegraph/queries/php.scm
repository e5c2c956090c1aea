; PHP

(class_declaration
  name: (name) @name) @definition.class

(interface_declaration
  name: (name) @name) @definition.interface

(trait_declaration
  name: (name) @name) @definition.trait

(enum_declaration
  name: (name) @name) @definition.enum

(namespace_definition
  name: (_) @name
  body: (_)) @definition.module

(function_definition
  name: (name) @name) @definition.function

(method_declaration
  name: (name) @name) @definition.method

(const_declaration
  (const_element (name) @name)) @definition.constant

(function_call_expression
  function: [
    (name) @reference.call
    (qualified_name (name) @reference.call .)
  ])

(member_call_expression
  name: (name) @reference.call)

(nullsafe_member_call_expression
  name: (name) @reference.call)

(scoped_call_expression
  name: (name) @reference.call)

(object_creation_expression
  [(name) (qualified_name (name) .)] @reference.call)

(namespace_use_declaration
  (namespace_use_clause
    [(name) (qualified_name)] @import.module)) @import

(expression_statement
  [
    (require_expression (string (string_content) @import.module))
    (require_once_expression (string (string_content) @import.module))
    (include_expression (string (string_content) @import.module))
    (include_once_expression (string (string_content) @import.module))
  ]) @import
