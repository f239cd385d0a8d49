; Bindings that can state the type of a name, used by repoctx.holes to infer the
; receiver type for member completion (`calc.` -> PriceCalculator).
;
; Captures:
;   @name    a local/global/class-level name being bound
;   @member  an attribute bound through `self.<member>` / `cls.<member>`
;   @type    the annotation, when the binding has one
;   @value   the bound value (a constructor call states the type)
; The Python side keeps the bindings of the wanted name in the scopes around the
; cursor and picks the nearest one.

; calc = PriceCalculator(0.2) / calc: PriceCalculator [= ...] (also class-level fields)
(assignment
  left: (identifier) @name
  type: (type)? @type
  right: (_)? @value)

; self.repo = Repo() / self.repo: Repo [= ...]
(assignment
  left: (attribute
    object: (identifier) @receiver
    attribute: (identifier) @member)
  type: (type)? @type
  right: (_)? @value
  (#any-of? @receiver "self" "cls"))

; def f(calc: PriceCalculator) / def f(calc: PriceCalculator = ...)
(typed_parameter
  .
  (identifier) @name
  type: (type) @type)

(typed_default_parameter
  name: (identifier) @name
  type: (type) @type)

; untyped parameters shadow outer bindings
(parameters
  (identifier) @name)

(default_parameter
  name: (identifier) @name)

; with PriceCalculator() as calc:
(with_item
  value: (as_pattern
    (_) @value
    alias: (as_pattern_target
      (identifier) @name)))

; for calc in calcs:  (untyped, shadows)
(for_statement
  left: (identifier) @name)

; @property
; def repo(self) -> Repo:
(decorated_definition
  (decorator) @decorator
  definition: (function_definition
    name: (identifier) @member
    return_type: (type) @type)
  (#match? @decorator "^@([A-Za-z_][A-Za-z0-9_]*\\.)*(cached_)?property$"))
