;; hello: answers every request with 200, "content-type: text/plain" and a fixed greeting.
;;
;; A core module implementing the canonical ABI by hand for the `http-bare` world:
;; - `handle(request)`: the request record flattens to 10 i32 params, a (ptr, len) pair
;;   for each of method, path, query, headers and body.
;; - The response flattens to 5 values, more than MAX_FLAT_RESULTS (1), so `handle`
;;   returns a pointer to it in linear memory. Record alignment is 4 (lists are
;;   (i32 ptr, i32 len)), so the 20-byte layout is:
;;     0: status u16 (+2 padding) | 4: headers ptr | 8: headers len
;;     12: body ptr | 16: body len
;; - A header is tuple<string, string>: 16 bytes (key ptr, key len, value ptr, value len).
;; The response is fully static, so it lives in data segments below $HEAP_BASE (1024).
(module
  (memory (export "memory") 1)

  (data (i32.const 0) "content-type")                ;; 12 bytes
  (data (i32.const 16) "text/plain")                 ;; 10 bytes
  (data (i32.const 32) "Hello from wasmlattice!\n")  ;; 24 bytes
  ;; headers[0] at 64: key (0, 12), value (16, 10)
  (data (i32.const 64) "\00\00\00\00" "\0c\00\00\00" "\10\00\00\00" "\0a\00\00\00")
  ;; response at 96: status 200, headers (64, 1), body (32, 24)
  (data (i32.const 96) "\c8\00\00\00" "\40\00\00\00" "\01\00\00\00" "\20\00\00\00" "\18\00\00\00")

  ;; Bump allocator for the host's copies of the request. The arena is reset in
  ;; post-return, so memory stays flat across calls instead of growing per request.
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
    (i32.const 96))

  (func (export "cabi_post_wasmlattice:http/incoming-handler@0.1.0#handle") (param i32)
    (global.set $heap (i32.const 1024)))
)
