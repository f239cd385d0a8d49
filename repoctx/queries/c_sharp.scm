; repoctx queries for C#. Sections and capture names are described in python.scm.

;; section: definitions

(class_declaration
  name: (identifier) @name
  body: (declaration_list)? @body) @definition.class

(struct_declaration
  name: (identifier) @name
  body: (declaration_list)? @body) @definition.class

(record_declaration
  name: (identifier) @name
  body: (declaration_list)? @body) @definition.class

(interface_declaration
  name: (identifier) @name
  body: (declaration_list)? @body) @definition.interface

(enum_declaration
  name: (identifier) @name
  body: (enum_member_declaration_list)? @body) @definition.enum

(enum_member_declaration
  name: (identifier) @name) @definition.field

(delegate_declaration
  name: (identifier) @name) @definition.type_alias

(method_declaration
  name: (identifier) @name
  body: (_)? @body) @definition.method

(constructor_declaration
  name: (identifier) @name
  body: (_)? @body) @definition.method

(local_function_statement
  name: (identifier) @name
  body: (_)? @body) @definition.function

(field_declaration
  (variable_declaration
    (variable_declarator
      name: (identifier) @name))) @definition.field

(event_field_declaration
  (variable_declaration
    (variable_declarator
      name: (identifier) @name))) @definition.field

(property_declaration
  name: (identifier) @name
  accessors: (_)? @value) @definition.field

(property_declaration
  name: (identifier) @name
  value: (_)? @value) @definition.field

;; section: imports

(using_directive) @import

;; section: identifiers

(identifier) @identifier

;; section: bodies

(method_declaration body: (block) @elide)
(constructor_declaration body: (block) @elide)
(destructor_declaration body: (block) @elide)
(operator_declaration body: (block) @elide)
(conversion_operator_declaration body: (block) @elide)
(local_function_statement body: (block) @elide)
(accessor_declaration body: (block) @elide)
(lambda_expression body: (block) @elide)
(anonymous_method_expression (block) @elide)
