; C#

(class_declaration
  name: (identifier) @name) @definition.class

(record_declaration
  name: (identifier) @name) @definition.class

(struct_declaration
  name: (identifier) @name) @definition.struct

(interface_declaration
  name: (identifier) @name) @definition.interface

(enum_declaration
  name: (identifier) @name) @definition.enum

(delegate_declaration
  name: (identifier) @name) @definition.type

(namespace_declaration
  name: (_) @name) @definition.module

(method_declaration
  name: (identifier) @name) @definition.method

(constructor_declaration
  name: (identifier) @name) @definition.method

(destructor_declaration
  name: (identifier) @name) @definition.method

(local_function_statement
  name: (identifier) @name) @definition.function

(invocation_expression
  function: [
    (identifier) @reference.call
    (member_access_expression name: (identifier) @reference.call)
    (generic_name (identifier) @reference.call)
    (member_access_expression name: (generic_name (identifier) @reference.call))
  ])

(object_creation_expression
  type: [(identifier) (qualified_name name: (identifier)) (generic_name (identifier))] @reference.call)

(using_directive
  [(identifier) (qualified_name)] @import.module) @import
