; Bindings that can state the type of a name, used by repoctx.holes to infer the
; receiver type for member completion (`calc.` -> PriceCalculator). Shared by the
; typescript and tsx grammars.
;
; Captures:
;   @name    a variable or parameter being bound
;   @member  a class member: field, parameter property, `this.<member> = ...`, getter
;   @type    the type annotation's type, when there is one
;   @value   the bound value (`new C()` and `x as C` state the type)

;; include: holes_ecmascript

; const calc = new PriceCalculator(0.2) / let calc: PriceCalculator [= ...]
(variable_declarator
  name: (identifier) @name
  type: (type_annotation (_) @type)?
  value: (_)? @value)

; function f(calc: PriceCalculator) / (calc: PriceCalculator) => ...
(required_parameter
  pattern: (identifier) @name
  type: (type_annotation (_) @type)?)

(optional_parameter
  pattern: (identifier) @name
  type: (type_annotation (_) @type)?)

; for (const calc of calcs)  (untyped, shadows)
(for_in_statement
  left: (identifier) @name)

; class fields: private repo: Repo = new Repo()
(public_field_definition
  name: (property_identifier) @member
  type: (type_annotation (_) @type)?
  value: (_)? @value)

; constructor parameter properties: constructor(private readonly repo: Repo)
(required_parameter
  (accessibility_modifier)
  pattern: (identifier) @member
  type: (type_annotation (_) @type)?)

(required_parameter
  "readonly"
  pattern: (identifier) @member
  type: (type_annotation (_) @type)?)

(optional_parameter
  (accessibility_modifier)
  pattern: (identifier) @member
  type: (type_annotation (_) @type)?)

; get repo(): Repo { ... }
(method_definition
  "get"
  name: (property_identifier) @member
  return_type: (type_annotation (_) @type))
