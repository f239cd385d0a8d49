; repoctx queries for TypeScript (also included by tsx.scm).
; Sections and capture names are described in python.scm. The patterns JavaScript shares
; are in ecmascript.scm; this file adds those of the typescript grammar only.

;; include: ecmascript

;; section: definitions

(class_declaration
  name: (type_identifier) @name
  body: (class_body)? @body) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name
  body: (class_body)? @body) @definition.class

(interface_declaration
  name: (type_identifier) @name
  body: (_)? @body) @definition.interface

(enum_declaration
  name: (identifier) @name
  body: (enum_body)? @body) @definition.enum

(enum_body
  name: (property_identifier) @name @definition.field)

(enum_body
  (enum_assignment
    name: (property_identifier) @name) @definition.field)

(type_alias_declaration
  name: (type_identifier) @name) @definition.type_alias

(function_signature
  name: (identifier) @name) @definition.function

(method_signature
  name: (_) @name) @definition.method

(abstract_method_signature
  name: (_) @name) @definition.method

; class properties holding functions are methods: `onClick = (e) => {...}`
(public_field_definition
  name: (_) @name
  value: [
    (arrow_function body: (statement_block)? @body)
    (function_expression body: (statement_block)? @body)
  ]) @definition.method

(public_field_definition
  name: (_) @name
  value: (_)? @value) @definition.field

(property_signature
  name: (_) @name) @definition.field

;; section: identifiers

(type_identifier) @identifier
