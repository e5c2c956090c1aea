; Kotlin (the grammar has few fields: names are matched by position).

(class_declaration
  "interface"
  (type_identifier) @name) @definition.interface

(class_declaration
  "enum"
  (type_identifier) @name) @definition.enum

(class_declaration
  (type_identifier) @name) @definition.class

(object_declaration
  (type_identifier) @name) @definition.class

(function_declaration
  (simple_identifier) @name) @definition.function

(type_alias
  (type_identifier) @name) @definition.type

(call_expression
  [
    (simple_identifier) @reference.call
    (navigation_expression (navigation_suffix (simple_identifier) @reference.call) .)
  ])

(import_header
  (identifier) @import.module) @import
