; repoctx queries shared by javascript.scm and typescript.scm: the patterns that compile
; against the javascript, typescript and tsx grammars alike (each of those files includes
; this one and adds its own grammar's patterns). Sections and capture names are described
; in python.scm.

;; section: definitions

(function_declaration
  name: (identifier) @name
  body: (statement_block)? @body) @definition.function

(generator_function_declaration
  name: (identifier) @name
  body: (statement_block)? @body) @definition.function

(method_definition
  name: (_) @name
  body: (statement_block)? @body) @definition.method

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
