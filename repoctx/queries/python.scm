; repoctx queries for Python.
;
; Every language's file follows the same convention. A file is split into sections by
; ";; section: NAME" lines, each compiled into its own query; ";; include: NAME" pulls
; in queries/NAME.scm, whose sections join the includer's sections of the same name
; (tsx.scm includes typescript.scm; javascript.scm and typescript.scm both include
; ecmascript.scm, the patterns their grammars share). Capture names:
;
;   definitions  @definition.<kind>  the definition node; kind is one of class, interface,
;                                    enum, function, method, field, type_alias, variable
;                                    (a function inside a class becomes a method, a
;                                    variable inside one a field)
;                @name               its name (required)
;                @body               optional: the body; the signature stops where it starts
;                @value              optional: a field's or variable's initialiser, elided
;                                    from the signature when long
;                @parent             optional: the parent's name when it is not the
;                                    enclosing class (Go receivers, Python __init__ fields)
;                @scope              a container that is not a definition itself but names
;                                    the parent of the definitions inside it (with @name),
;                                    e.g. a Rust impl block
;   imports      @import             an import statement; repoctx.parsing reads its parts
;   identifiers  @identifier         every identifier use (names, members, types)
;   bodies       @elide              function bodies a skeleton replaces with its marker
;
; Captures starting with "_" only serve predicates. When several patterns capture the
; same @name node, the first pattern in the file wins.

;; section: definitions

(class_definition
  name: (identifier) @name
  body: (block)? @body) @definition.class

(function_definition
  name: (identifier) @name
  body: (block)? @body) @definition.function

(type_alias_statement
  left: (type (identifier) @name)) @definition.type_alias

; class attributes: "x: int = 0", "y = 1"
(class_definition
  body: (block
    (expression_statement
      (assignment
        left: (identifier) @name
        right: (_)? @value)) @definition.field))

; instance attributes assigned at the top level of __init__
(class_definition
  name: (identifier) @parent
  body: (block
    (function_definition
      name: (identifier) @_init
      body: (block
        (expression_statement
          (assignment
            left: (attribute
              object: (identifier) @_self
              attribute: (identifier) @name)
            right: (_)? @value)) @definition.field)))
  (#eq? @_init "__init__")
  (#eq? @_self "self"))

(class_definition
  name: (identifier) @parent
  body: (block
    (decorated_definition
      definition: (function_definition
        name: (identifier) @_init
        body: (block
          (expression_statement
            (assignment
              left: (attribute
                object: (identifier) @_self
                attribute: (identifier) @name)
              right: (_)? @value)) @definition.field))))
  (#eq? @_init "__init__")
  (#eq? @_self "self"))

; module-level variables and constants
(module
  (expression_statement
    (assignment
      left: (identifier) @name
      right: (_)? @value)) @definition.variable)

;; section: imports

(import_statement) @import
(import_from_statement) @import
(future_import_statement) @import

;; section: identifiers

(identifier) @identifier

;; section: bodies

(function_definition
  body: (block) @elide)
