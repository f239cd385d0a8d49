; repoctx queries for TypeScript (also included by tsx.scm).
; Sections and capture names are described in python.scm.

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

(function_declaration
  name: (identifier) @name
  body: (statement_block)? @body) @definition.function

(generator_function_declaration
  name: (identifier) @name
  body: (statement_block)? @body) @definition.function

(function_signature
  name: (identifier) @name) @definition.function

(method_definition
  name: (_) @name
  body: (statement_block)? @body) @definition.method

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

; module-level functions written as `const f = (...) => {...}` or `function` expressions
(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: [
        (arrow_function body: (statement_block)? @body)
        (function_expression body: (statement_block)? @body)
        (generator_function body: (statement_block)? @body)
      ]) @definition.function))

(program
  (variable_declaration
    (variable_declarator
      name: (identifier) @name
      value: [
        (arrow_function body: (statement_block)? @body)
        (function_expression body: (statement_block)? @body)
        (generator_function body: (statement_block)? @body)
      ]) @definition.function))

(program
  (export_statement
    declaration: (lexical_declaration
      (variable_declarator
        name: (identifier) @name
        value: [
          (arrow_function body: (statement_block)? @body)
          (function_expression body: (statement_block)? @body)
          (generator_function body: (statement_block)? @body)
        ]) @definition.function)))

(program
  (export_statement
    declaration: (variable_declaration
      (variable_declarator
        name: (identifier) @name
        value: [
          (arrow_function body: (statement_block)? @body)
          (function_expression body: (statement_block)? @body)
          (generator_function body: (statement_block)? @body)
        ]) @definition.function)))

; module-level variables and constants
(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: (_)? @value) @definition.variable))

(program
  (variable_declaration
    (variable_declarator
      name: (identifier) @name
      value: (_)? @value) @definition.variable))

(program
  (export_statement
    declaration: (lexical_declaration
      (variable_declarator
        name: (identifier) @name
        value: (_)? @value) @definition.variable)))

(program
  (export_statement
    declaration: (variable_declaration
      (variable_declarator
        name: (identifier) @name
        value: (_)? @value) @definition.variable)))

;; section: imports

(import_statement) @import

(export_statement
  source: (_)) @import

((lexical_declaration
  (variable_declarator
    value: (call_expression
      function: (identifier) @_require
      arguments: (arguments (string))))) @import
  (#eq? @_require "require"))

((variable_declaration
  (variable_declarator
    value: (call_expression
      function: (identifier) @_require
      arguments: (arguments (string))))) @import
  (#eq? @_require "require"))

((expression_statement
  (call_expression
    function: (identifier) @_require
    arguments: (arguments (string)))) @import
  (#eq? @_require "require"))

;; section: identifiers

(identifier) @identifier
(property_identifier) @identifier
(type_identifier) @identifier
(shorthand_property_identifier) @identifier
(shorthand_property_identifier_pattern) @identifier
(private_property_identifier) @identifier

;; section: bodies

(function_declaration body: (statement_block) @elide)
(generator_function_declaration body: (statement_block) @elide)
(method_definition body: (statement_block) @elide)
(function_expression body: (statement_block) @elide)
(generator_function body: (statement_block) @elide)
(arrow_function body: (statement_block) @elide)
