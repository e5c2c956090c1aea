; Java

(class_declaration
  name: (identifier) @name) @definition.class

(record_declaration
  name: (identifier) @name) @definition.class

(interface_declaration
  name: (identifier) @name) @definition.interface

(annotation_type_declaration
  name: (identifier) @name) @definition.interface

(enum_declaration
  name: (identifier) @name) @definition.enum

(method_declaration
  name: (identifier) @name) @definition.method

(constructor_declaration
  name: (identifier) @name) @definition.method

(compact_constructor_declaration
  name: (identifier) @name) @definition.method

(method_invocation
  name: (identifier) @reference.call)

(object_creation_expression
  type: [
    (type_identifier) @reference.call
    (scoped_type_identifier (type_identifier) @reference.call .)
    (generic_type [(type_identifier) (scoped_type_identifier (type_identifier) .)] @reference.call)
  ])

(import_declaration
  [(scoped_identifier) (identifier)] @import.module) @import
