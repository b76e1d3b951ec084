;; loop: handle spins forever; only epoch or fuel interruption can stop it.
;; `handle` takes the 10 flat request params and would return a response pointer
;; (see hello.wat for the canonical ABI layout).
(module
  (memory (export "memory") 1)

  ;; Bump allocator for the host's copies of the request (same as hello.wat); it never
  ;; frees, which is fine since handle never returns.
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr  ;; round $heap up to $align (a power of two)
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
      (then  ;; grow by the missing number of 64 KiB pages; trap if that fails
        (if (i32.eq (i32.const -1)
              (memory.grow (i32.shr_u
                (i32.sub (i32.add (global.get $heap) (i32.const 0xffff))
                         (i32.shl (memory.size) (i32.const 16)))
                (i32.const 16))))
          (then unreachable))))
    (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))
    (local.get $ptr))

  (func (export "wasmlattice:http/incoming-handler@0.1.0#handle")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (loop $forever (br $forever))
    unreachable)
)
