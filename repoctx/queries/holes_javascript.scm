; Bindings that can state the type of a name, used by repoctx.holes to infer the
; receiver type for member completion in JavaScript (`calc.` after
; `const calc = new PriceCalculator()`). JSDoc is not read.
;
; Captures:
;   @name    a variable or parameter being bound
;   @member  a class member: field or `this.<member> = ...`
;   @value   the bound value (`new C()` states the type)

;; include: holes_ecmascript

; const calc = new PriceCalculator(0.2)
(variable_declarator
  name: (identifier) @name
  value: (_)? @value)

; function f(calc) / (calc) => ... / function f(calc = new C())
(formal_parameters
  (identifier) @name)

(formal_parameters
  (assignment_pattern
    left: (identifier) @name
    right: (_) @value))

; for (const calc of calcs)  (shadows)
(for_in_statement
  left: (identifier) @name)

; class fields: repo = new Repo()
(field_definition
  property: (property_identifier) @member
  value: (_)? @value)
