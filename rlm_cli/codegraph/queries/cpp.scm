; C++: `Type::method` defined outside its class is the method Type.method.

(function_definition
  declarator: [
    (function_declarator declarator: [(identifier) (field_identifier) (operator_name) (destructor_name)] @name)
    (pointer_declarator declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name))
    (reference_declarator (function_declarator declarator: [(identifier) (field_identifier)] @name))
  ]) @definition.function

(function_definition
  declarator: [
    (function_declarator
      declarator: (qualified_identifier
        scope: (_) @receiver
        name: [(identifier) (operator_name) (destructor_name)] @name))
    (pointer_declarator
      declarator: (function_declarator
        declarator: (qualified_identifier scope: (_) @receiver name: (identifier) @name)))
    (reference_declarator
      (function_declarator
        declarator: (qualified_identifier scope: (_) @receiver name: (identifier) @name)))
  ]) @definition.method

(field_declaration
  declarator: (function_declarator
    declarator: [(field_identifier) (operator_name) (destructor_name)] @name)) @definition.method

(declaration
  declarator: (function_declarator
    declarator: [(field_identifier) (destructor_name)] @name)) @definition.method

(class_specifier
  name: (type_identifier) @name
  body: (_)) @definition.class

(struct_specifier
  name: (type_identifier) @name
  body: (_)) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (_)) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (_)) @definition.enum

(namespace_definition
  name: (_) @name) @definition.module

(type_definition
  declarator: (type_identifier) @name) @definition.type

(alias_declaration
  name: (type_identifier) @name) @definition.type

(preproc_def
  name: (identifier) @name) @definition.macro

(preproc_function_def
  name: (identifier) @name) @definition.macro

(call_expression
  function: [
    (identifier) @reference.call
    (field_expression field: (field_identifier) @reference.call)
    (qualified_identifier name: (identifier) @reference.call)
    (template_function name: (identifier) @reference.call)
    (field_expression field: (template_method name: (field_identifier) @reference.call))
  ])

(new_expression
  type: [(type_identifier) (qualified_identifier name: (type_identifier))] @reference.call)

(preproc_include
  path: (_) @import.module) @import
