; Bindings the javascript, typescript and tsx grammars state alike, included by
; holes_javascript.scm and holes_typescript.scm (captures as there).

; calc => ...
(arrow_function
  parameter: (identifier) @name)

; this.repo = new Repo()
(assignment_expression
  left: (member_expression
    object: (this)
    property: (property_identifier) @member)
  right: (_) @value)
