; repoctx queries for Java. Sections and capture names are described in python.scm.

;; section: definitions

(class_declaration
  name: (identifier) @name
  body: (class_body)? @body) @definition.class

(record_declaration
  name: (identifier) @name
  body: (class_body)? @body) @definition.class

(interface_declaration
  name: (identifier) @name
  body: (interface_body)? @body) @definition.interface

(annotation_type_declaration
  name: (identifier) @name
  body: (annotation_type_body)? @body) @definition.interface

(enum_declaration
  name: (identifier) @name
  body: (enum_body)? @body) @definition.enum

(enum_constant
  name: (identifier) @name) @definition.field

(method_declaration
  name: (identifier) @name
  body: (block)? @body) @definition.method

(constructor_declaration
  name: (identifier) @name
  body: (constructor_body)? @body) @definition.method

(annotation_type_element_declaration
  name: (identifier) @name) @definition.method

(field_declaration
  declarator: (variable_declarator
    name: (identifier) @name
    value: (_)? @value)) @definition.field

(constant_declaration
  declarator: (variable_declarator
    name: (identifier) @name
    value: (_)? @value)) @definition.field

;; section: imports

(import_declaration) @import

;; section: identifiers

(identifier) @identifier
(type_identifier) @identifier

;; section: bodies

(method_declaration body: (block) @elide)
(constructor_declaration body: (constructor_body) @elide)
(compact_constructor_declaration body: (block) @elide)
(lambda_expression body: (block) @elide)
(static_initializer (block) @elide)
