; repoctx queries for TSX: the TypeScript queries apply unchanged (the tsx grammar
; shares TypeScript's node types and adds JSX).

;; include: typescript
