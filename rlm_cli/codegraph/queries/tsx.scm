; inherits: typescript
; TSX is TypeScript with JSX; its definitions, calls and imports are those of TypeScript.
