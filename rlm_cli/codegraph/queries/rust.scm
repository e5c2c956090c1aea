; Rust: `impl T { fn f }` and `impl Trait for T { fn f }` give the method T.f.

(struct_item
  name: (type_identifier) @name) @definition.struct

(union_item
  name: (type_identifier) @name) @definition.struct

(enum_item
  name: (type_identifier) @name) @definition.enum

(trait_item
  name: (type_identifier) @name) @definition.trait

(type_item
  name: (type_identifier) @name) @definition.type

(mod_item
  name: (identifier) @name
  body: (_)) @definition.module

(function_item
  name: (identifier) @name) @definition.function

(function_signature_item
  name: (identifier) @name) @definition.function

(const_item
  name: (identifier) @name) @definition.constant

(static_item
  name: (identifier) @name) @definition.constant

(macro_definition
  name: (identifier) @name) @definition.macro

(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]) @scope

(call_expression
  function: [
    (identifier) @reference.call
    (field_expression field: (field_identifier) @reference.call)
    (scoped_identifier name: (identifier) @reference.call)
    (generic_function function: (identifier) @reference.call)
    (generic_function function: (field_expression field: (field_identifier) @reference.call))
    (generic_function function: (scoped_identifier name: (identifier) @reference.call))
  ])

(macro_invocation
  macro: [
    (identifier) @reference.call
    (scoped_identifier name: (identifier) @reference.call)
  ])

(use_declaration
  argument: (_) @import.module) @import

(mod_item
  name: (identifier) @import.module
  !body) @import

(extern_crate_declaration
  name: (identifier) @import.module) @import
