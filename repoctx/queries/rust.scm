; repoctx queries for Rust. Sections and capture names are described in python.scm.
; @scope marks a container that is not itself a definition but names the parent of
; the definitions inside it (an impl block names its type).

;; section: definitions

(struct_item
  name: (type_identifier) @name
  body: (field_declaration_list)? @body) @definition.class

(union_item
  name: (type_identifier) @name
  body: (field_declaration_list)? @body) @definition.class

(enum_item
  name: (type_identifier) @name
  body: (_)? @body) @definition.enum

(enum_variant
  name: (identifier) @name) @definition.field

(trait_item
  name: (type_identifier) @name
  body: (_)? @body) @definition.interface

(type_item
  name: (type_identifier) @name) @definition.type_alias

(function_item
  name: (identifier) @name
  body: (_)? @body) @definition.function

(function_signature_item
  name: (identifier) @name) @definition.function

(struct_item
  body: (field_declaration_list
    (field_declaration
      name: (field_identifier) @name) @definition.field))

(union_item
  body: (field_declaration_list
    (field_declaration
      name: (field_identifier) @name) @definition.field))

(const_item
  name: (identifier) @name
  value: (_)? @value) @definition.variable

(static_item
  name: (identifier) @name
  value: (_)? @value) @definition.variable

(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]
  body: (_)? @body) @scope

;; section: imports

(use_declaration) @import
(mod_item !body) @import
(extern_crate_declaration) @import

;; section: identifiers

(identifier) @identifier
(type_identifier) @identifier
(field_identifier) @identifier
(shorthand_field_identifier) @identifier

;; section: bodies

(function_item body: (block) @elide)
(closure_expression body: (block) @elide)
