;; Core module of the sockets probe (world `sockets-probe` in world.wit); the test embeds
;; the WIT and wraps it into a component with wasm-tools.
;;
;; Every export asks wasi:sockets for one piece of network authority, 127.0.0.1 only:
;;   -1          the host allowed it (a sandbox hole),
;;   code        the host refused the step with wasi:sockets error-code `code`,
;;   1000+code   creating the socket already failed with `code`.
;;
;; Canonical ABI notes, since everything here is lowered by hand:
;; - ip-socket-address flattens to 12 i32s: the case, then the joined payload slots
;;   (ipv4 uses 5: port + 4 octets; ipv6 needs 11), so start-bind/start-connect take
;;   self + network + 12 + a return pointer = 15 i32s.
;; - Results with a payload do not fit one flat value, so the callee writes them at the
;;   return pointer (always 0 here): result<_, error-code> is tag@0, code@1;
;;   result<own<T>, error-code> is tag@0, handle-or-code@4.
(module
  (type $start-op (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))

  (import "wasi:sockets/instance-network@0.2.0" "instance-network"
    (func $instance-network (result i32)))
  (import "wasi:sockets/network@0.2.0" "[resource-drop]network"
    (func $drop-network (param i32)))
  (import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket"
    (func $create-tcp (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-connect"
    (func $tcp-start-connect (type $start-op)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-bind"
    (func $tcp-start-bind (type $start-op)))
  (import "wasi:sockets/tcp@0.2.0" "[resource-drop]tcp-socket"
    (func $drop-tcp (param i32)))
  (import "wasi:sockets/udp-create-socket@0.2.0" "create-udp-socket"
    (func $create-udp (param i32 i32)))
  (import "wasi:sockets/udp@0.2.0" "[method]udp-socket.start-bind"
    (func $udp-start-bind (type $start-op)))
  (import "wasi:sockets/udp@0.2.0" "[resource-drop]udp-socket"
    (func $drop-udp (param i32)))
  (import "wasi:sockets/ip-name-lookup@0.2.0" "resolve-addresses"
    (func $resolve-addresses (param i32 i32 i32 i32)))
  (import "wasi:sockets/ip-name-lookup@0.2.0" "[resource-drop]resolve-address-stream"
    (func $drop-resolve-stream (param i32)))

  (memory (export "memory") 1)
  (data (i32.const 64) "localhost")

  ;; Decode result<_, error-code> at 0: -1 for ok, else the error code.
  (func $unit-outcome (result i32)
    (if (result i32) (i32.load8_u (i32.const 0))
      (then (i32.load8_u (i32.const 1)))
      (else (i32.const -1))))

  (func (export "tcp-connect") (param $port i32) (result i32)
    (local $net i32) (local $sock i32) (local $outcome i32)
    (local.set $net (call $instance-network))
    (call $create-tcp (i32.const 0) (i32.const 0)) ;; ipv4
    (if (i32.load8_u (i32.const 0))
      (then
        (call $drop-network (local.get $net))
        (return (i32.add (i32.const 1000) (i32.load8_u (i32.const 4))))))
    (local.set $sock (i32.load (i32.const 4)))
    ;; ipv4(port, 127.0.0.1), 6 unused payload slots, return pointer 0
    (call $tcp-start-connect
      (local.get $sock) (local.get $net)
      (i32.const 0) (local.get $port) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0))
    (local.set $outcome (call $unit-outcome))
    (call $drop-tcp (local.get $sock))
    (call $drop-network (local.get $net))
    (local.get $outcome))

  (func (export "tcp-bind") (result i32)
    (local $net i32) (local $sock i32) (local $outcome i32)
    (local.set $net (call $instance-network))
    (call $create-tcp (i32.const 0) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then
        (call $drop-network (local.get $net))
        (return (i32.add (i32.const 1000) (i32.load8_u (i32.const 4))))))
    (local.set $sock (i32.load (i32.const 4)))
    ;; ipv4(port 0, 127.0.0.1)
    (call $tcp-start-bind
      (local.get $sock) (local.get $net)
      (i32.const 0) (i32.const 0) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0))
    (local.set $outcome (call $unit-outcome))
    (call $drop-tcp (local.get $sock))
    (call $drop-network (local.get $net))
    (local.get $outcome))

  (func (export "udp-bind") (result i32)
    (local $net i32) (local $sock i32) (local $outcome i32)
    (local.set $net (call $instance-network))
    (call $create-udp (i32.const 0) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then
        (call $drop-network (local.get $net))
        (return (i32.add (i32.const 1000) (i32.load8_u (i32.const 4))))))
    (local.set $sock (i32.load (i32.const 4)))
    (call $udp-start-bind
      (local.get $sock) (local.get $net)
      (i32.const 0) (i32.const 0) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0))
    (local.set $outcome (call $unit-outcome))
    (call $drop-udp (local.get $sock))
    (call $drop-network (local.get $net))
    (local.get $outcome))

  (func (export "resolve") (result i32)
    (local $net i32) (local $outcome i32)
    (local.set $net (call $instance-network))
    ;; name = "localhost" (9 bytes at 64); result<own<stream>, error-code> at 0
    (call $resolve-addresses (local.get $net) (i32.const 64) (i32.const 9) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then (local.set $outcome (i32.load8_u (i32.const 4))))
      (else
        (call $drop-resolve-stream (i32.load (i32.const 4)))
        (local.set $outcome (i32.const -1))))
    (call $drop-network (local.get $net))
    (local.get $outcome))
)
