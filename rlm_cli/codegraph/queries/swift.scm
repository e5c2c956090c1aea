; Swift: an `extension T` block names its members T.member without being a symbol itself.

(class_declaration
  declaration_kind: "class"
  name: (type_identifier) @name) @definition.class

(class_declaration
  declaration_kind: "actor"
  name: (type_identifier) @name) @definition.class

(class_declaration
  declaration_kind: "struct"
  name: (type_identifier) @name) @definition.struct

(class_declaration
  declaration_kind: "enum"
  name: (type_identifier) @name) @definition.enum

(class_declaration
  declaration_kind: "extension"
  name: (user_type (type_identifier) @name .)) @scope

(protocol_declaration
  name: (type_identifier) @name) @definition.interface

(function_declaration
  name: (simple_identifier) @name) @definition.function

(protocol_function_declaration
  name: (simple_identifier) @name) @definition.method

(init_declaration
  "init" @name) @definition.method

(typealias_declaration
  name: (type_identifier) @name) @definition.type

(call_expression
  [
    (simple_identifier) @reference.call
    (navigation_expression suffix: (navigation_suffix suffix: (simple_identifier) @reference.call))
  ])

(import_declaration
  (identifier) @import.module) @import

; The grammar reads `a * f(x)` as a call of `a * f`: take the right operand's name.
(call_expression
  (_
    rhs: [
      (simple_identifier) @reference.call
      (navigation_expression suffix: (navigation_suffix suffix: (simple_identifier) @reference.call))
    ])
  (call_suffix))
