; inherits: _ecma
; JavaScript: a class field holding a function is a method.

(field_definition
  property: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.method
