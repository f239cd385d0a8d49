; repoctx queries for Go. Sections and capture names are described in python.scm.

;; section: definitions

(function_declaration
  name: (identifier) @name
  body: (block)? @body) @definition.function

(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [
        (type_identifier) @parent
        (pointer_type (type_identifier) @parent)
        (generic_type type: (type_identifier) @parent)
        (pointer_type (generic_type type: (type_identifier) @parent))
      ]))
  name: (field_identifier) @name
  body: (block)? @body) @definition.method

(method_declaration
  name: (field_identifier) @name
  body: (block)? @body) @definition.method

(type_spec
  name: (type_identifier) @name
  type: (struct_type (field_declaration_list) @body)) @definition.class

(type_spec
  name: (type_identifier) @name
  type: (interface_type "{" @body)) @definition.interface

(type_spec
  name: (type_identifier) @name) @definition.type_alias

(type_alias
  name: (type_identifier) @name) @definition.type_alias

(field_declaration
  name: (field_identifier) @name) @definition.field

(method_elem
  name: (field_identifier) @name) @definition.method

(source_file
  (const_declaration
    (const_spec
      name: (identifier) @name
      value: (_)? @value) @definition.variable))

(source_file
  (var_declaration
    (var_spec
      name: (identifier) @name
      value: (_)? @value) @definition.variable))

(source_file
  (var_declaration
    (var_spec_list
      (var_spec
        name: (identifier) @name
        value: (_)? @value) @definition.variable)))

;; section: imports

(import_spec) @import

;; section: identifiers

(identifier) @identifier
(type_identifier) @identifier
(field_identifier) @identifier
(package_identifier) @identifier

;; section: bodies

(function_declaration body: (block) @elide)
(method_declaration body: (block) @elide)
(func_literal body: (block) @elide)
