;; probe: exports `noop` and `log-once` (probe-wit/probe.wit) for call-overhead benchmarks.
;; The build script assembles the WIT dir with a copy of providers/wit's logging package.
(module
  ;; log(level: enum -> i32, context: string -> (ptr, len), message: string -> (ptr, len))
  (import "wasi:logging/logging@0.1.0-draft" "log" (func $log (param i32 i32 i32 i32 i32)))
  ;; The host only reads strings from us, so no cabi_realloc is needed.
  (memory (export "memory") 1)
  (data (i32.const 0) "probe")
  (data (i32.const 8) "x")

  (func (export "wasmlattice:probe/calls@0.1.0#noop"))

  (func (export "wasmlattice:probe/calls@0.1.0#log-once")
    ;; level 2 = info (trace, debug, info, ...)
    (call $log (i32.const 2) (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 1)))
)
