; repoctx queries for JavaScript (.js, .jsx, .mjs, .cjs; JSX included).
; Sections and capture names are described in python.scm. The patterns TypeScript shares
; are in ecmascript.scm; this file adds those of the javascript grammar only.

;; include: ecmascript

;; section: definitions

(class_declaration
  name: (identifier) @name
  body: (class_body)? @body) @definition.class

; class properties holding functions are methods: `onClick = (e) => {...}`
(field_definition
  property: (_) @name
  value: [
    (arrow_function body: (statement_block)? @body)
    (function_expression body: (statement_block)? @body)
  ]) @definition.method

(field_definition
  property: (_) @name
  value: (_)? @value) @definition.field
