;; echo: answers 200 with the request body echoed back as the response body.
;; See hello.wat for the canonical ABI layout of the request params and the response.
(module
  (memory (export "memory") 1)

  (data (i32.const 0) "content-type")              ;; 12 bytes
  (data (i32.const 16) "application/octet-stream") ;; 24 bytes
  ;; headers[0] at 64: key (0, 12), value (16, 24)
  (data (i32.const 64) "\00\00\00\00" "\0c\00\00\00" "\10\00\00\00" "\18\00\00\00")
  ;; response at 96: status 200, headers (64, 1); the body is filled in per call
  (data (i32.const 96) "\c8\00\00\00" "\40\00\00\00" "\01\00\00\00")

  ;; Bump allocator for the host's copies of the request, reset in post-return
  ;; (same as hello.wat).
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
    (param $method i32) (param $method_len i32) (param $path i32) (param $path_len i32)
    (param $query i32) (param $query_len i32) (param $headers i32) (param $headers_len i32)
    (param $body i32) (param $body_len i32) (result i32)
    ;; The request body is already in our memory (the host copied it via cabi_realloc)
    ;; and the host reads the response before post-return resets the arena, so we can
    ;; point the response straight at it.
    (i32.store (i32.const 108) (local.get $body))
    (i32.store (i32.const 112) (local.get $body_len))
    (i32.const 96))

  (func (export "cabi_post_wasmlattice:http/incoming-handler@0.1.0#handle") (param i32)
    (global.set $heap (i32.const 1024)))
)
