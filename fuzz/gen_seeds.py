#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/<target>/.

The seeds are committed; this script documents how each was made and rewrites them all
(`python3 fuzz/gen_seeds.py`). The input formats are described in fuzz/README.md and
fuzz/harness.rs. Only the standard library is used (zlib for DEFLATE streams).
"""

import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
KEY = b"\x37\xfa\x21\x3d"  # RFC 6455 §5.7's masking key

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload=b"", fin=True, masked=False, rsv1=False, key=KEY):
    """One frame (RFC 6455 §5.2), masked with `key` when `masked`."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n <= 125:
        head = bytes([b0, mask_bit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def header_only(opcode, length, masked):
    """A frame header announcing `length` bytes (the payload is not included)."""
    mask_bit = 0x80 if masked else 0
    head = bytes([0x80 | opcode, mask_bit | 127]) + struct.pack(">Q", length)
    return head + (KEY if masked else b"")


def deflate(data, wbits=15, strip=True):
    """`data` as one permessage-deflate message: raw DEFLATE, sync flush, tail removed."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    if strip and out.endswith(b"\x00\x00\xff\xff"):
        out = out[:-4]
    return out


def close_body(code, reason=b""):
    return struct.pack(">H", code) + reason


# RFC 7692 §7.2.3: "Hello" compressed, in the ways the RFC shows.
HELLO = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])  # §7.2.3.1
HELLO_AGAIN = bytes([0xF2, 0x00, 0x11, 0x00, 0x00])  # §7.2.3.2, sharing the window
HELLO_STORED = bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello" + b"\x00"  # §7.2.3.3
HELLO_FINAL = bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00])  # §7.2.3.4
HELLO_TWO_BLOCKS = bytes(
    [0xF2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xCA, 0xC9, 0xC9, 0x07, 0x00]
)  # §7.2.3.5


def script(flags, steps, stream):
    """An endpoint input: flags, the step count, (action, len) pairs, then the stream."""
    out = bytes([flags, len(steps)])
    for action, length in steps:
        out += bytes([action, length])
    return out + stream


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def crlf(text):
    return text.replace("\n", "\r\n").encode()


RFC_REQUEST = """GET /chat HTTP/1.1
Host: server.example.com
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Origin: http://example.com
Sec-WebSocket-Protocol: chat, superchat
Sec-WebSocket-Version: 13

"""


def handshake_request():
    t = "handshake_request"
    write(t, "rfc6455_upgrade", crlf(RFC_REQUEST))
    write(
        t,
        "upgrade_deflate_offers",
        crlf(
            "GET /echo?room=1 HTTP/1.1\nHost: localhost:9002\nUpgrade: websocket\n"
            "Connection: keep-alive, Upgrade\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\n"
            "Sec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; "
            'client_max_window_bits="10"; server_max_window_bits=12, x-webkit-deflate-frame\n'
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover\n\n"
        ),
    )
    write(
        t,
        "upgrade_client_window_8",
        crlf(
            "GET / HTTP/1.1\nhost: h\nupgrade: WebSocket\nconnection: upgrade\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\nsec-websocket-version: 13\n"
            "sec-websocket-extensions: permessage-deflate; client_max_window_bits=8\n"
            "sec-websocket-protocol: chat\n\n"
        ),
    )
    write(
        t,
        "upgrade_then_frame",
        crlf(RFC_REQUEST) + frame(TEXT, b"Hello", masked=True),
    )
    write(t, "no_key", crlf(RFC_REQUEST.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n", "")))
    write(
        t,
        "two_keys",
        crlf(RFC_REQUEST.replace("Origin", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\nOrigin")),
    )
    write(t, "short_key", crlf(RFC_REQUEST.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==")))
    write(t, "version_8", crlf(RFC_REQUEST.replace("Version: 13", "Version: 8")))
    write(t, "post_upgrade", crlf(RFC_REQUEST.replace("GET", "POST")))
    write(t, "http10", crlf(RFC_REQUEST.replace("HTTP/1.1", "HTTP/1.0")))
    write(t, "plain_get", crlf("GET / HTTP/1.1\nHost: localhost\nAccept: */*\n\n"))
    write(t, "head", crlf("HEAD /index.html HTTP/1.1\nHost: localhost\n\n"))
    write(t, "partial", crlf(RFC_REQUEST)[:-30])
    write(t, "header_not_utf8", crlf("GET / HTTP/1.1\nHost: \xff\n\n").replace(b"\xc3\xbf", b"\xff"))
    write(t, "bare_lf", RFC_REQUEST.encode())


RFC_101 = """HTTP/1.1 101 Switching Protocols
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
"""


def response(extra=""):
    return crlf(RFC_101 + extra + "\n")


def client_handshake():
    t = "client_handshake"
    write(t, "rfc6455_101", response())
    write(t, "101_protocol_chat", response("Sec-WebSocket-Protocol: chat\n"))
    write(
        t,
        "101_then_frames",
        response() + frame(TEXT, b"Hello") + frame(PING, b"hi") + frame(CLOSE, close_body(1000, b"bye")),
    )
    write(
        t,
        "101_deflate_then_hello",
        response("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\n")
        + frame(TEXT, HELLO, rsv1=True),
    )
    write(
        t,
        "101_deflate_windows",
        response(
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; "
            "client_max_window_bits=12\n"
        )
        + frame(TEXT, HELLO, rsv1=True)
        + frame(TEXT, HELLO_AGAIN, rsv1=True),
    )
    write(
        t,
        "101_deflate_client_bits_no_value",
        response("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\n"),
    )
    write(t, "101_unoffered_extension", response("Sec-WebSocket-Extensions: x-foo\n"))
    write(t, "101_unoffered_protocol", response("Sec-WebSocket-Protocol: mqtt\n"))
    write(t, "101_wrong_accept", crlf(RFC_101.replace("s3pP", "AAAA") + "\n"))
    write(t, "404", crlf("HTTP/1.1 404 Not Found\nContent-Length: 9\n\nnot found"))
    write(t, "426", crlf("HTTP/1.1 426 Upgrade Required\nSec-WebSocket-Version: 13\n\n"))
    write(t, "partial", response()[:40])
    write(t, "lowercase_headers", crlf(RFC_101.lower().replace("s3pplmbitxaq9kygzzhzrbk+xoo=", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") + "\n"))


def endpoint(role):
    """Seeds for one role: a server reads masked frames, a client unmasked ones."""
    masked = role == "server"
    t = "endpoint_" + role

    def f(opcode, payload=b"", fin=True, rsv1=False):
        return frame(opcode, payload, fin=fin, masked=masked, rsv1=rsv1)

    hello = f(TEXT, b"Hello")
    fragmented = f(TEXT, b"Hel", fin=False) + f(PING, b"ping") + f(CONT, b"lo")
    write(t, "text_hello", script(0x00, [], hello))
    write(t, "binary_256", script(0x00, [], f(BINARY, bytes(range(256)))))
    write(t, "fragmented_with_ping", script(0x00, [], fragmented))
    write(t, "ping_pong", script(0x00, [], f(PING, b"Hello") + f(PONG, b"Hello")))
    write(t, "close_1000_bye", script(0x00, [], hello + f(CLOSE, close_body(1000, b"bye"))))
    write(t, "close_empty", script(0x00, [], f(CLOSE)))
    write(t, "echo", script(0x20, [], hello + f(BINARY, b"\x00\x01\x02") + fragmented))
    write(t, "echo_bang_close", script(0x20, [], f(TEXT, b"!close") + hello + f(CLOSE)))
    write(
        t,
        "split_neutral",
        script(0x00, [(0x00, 1), (0x01, 3), (0x0B, 2), (0x02, 5)], fragmented + hello),
    )
    write(t, "receive_one", script(0x10, [(0x00, 4)], hello + hello + f(PING) + hello))
    write(t, "timers", script(0x0C, [(0x83, 0), (0x84, 0), (0x00, 7), (0x85, 0)], hello * 2))
    write(t, "idle_close", script(0x08, [(0x85, 0), (0x85, 0)], hello))
    write(
        t,
        "sends_and_closes",
        script(
            0x00,
            [(0x93, 0), (0xA0, 3), (0xA1, 3), (0xA2, 3), (0xB0, 5), (0xC9, 0), (0x00, 11)],
            b"abcdefghijklmnopq" + hello + f(CLOSE, close_body(1001)),
        ),
    )
    write(t, "close_and_stop", script(0xD0, [(0xD1, 0)], hello))
    write(t, "drop", script(0x00, [(0xE3, 2)], hello))
    write(t, "outbound_close", script(0x40, [(0xF8, 0)], hello + f(CLOSE)))
    write(
        t,
        "too_big_small_limits",
        script(0x01, [], f(TEXT, b"x" * 126) + f(BINARY, b"y" * 100, fin=False) + f(CONT, b"z" * 200)),
    )
    write(t, "frame_too_big_tiny", script(0x02, [], f(BINARY, b"0123456789abcdefg")))
    big = header_only(BINARY, 70_000, masked) + bytes(300)
    write(t, "in_place_large_frame", script(0x03, [(0x04, 200), (0x06, 50)], big))
    write(t, "invalid_utf8", script(0x00, [], f(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")))
    write(t, "reserved_opcode", script(0x00, [], f(0x3, b"x")))
    write(t, "rsv1_without_deflate", script(0x00, [], f(TEXT, HELLO, rsv1=True)))
    write(t, "wrong_masking", script(0x00, [], frame(TEXT, b"Hello", masked=not masked)))
    write(t, "close_1005", script(0x00, [], f(CLOSE, close_body(1005))))
    write(t, "continuation_first", script(0x00, [], f(CONT, b"lo")))
    write(t, "control_fragmented", script(0x00, [], f(PING, b"x", fin=False)))
    write(t, "length_top_bit", script(0x00, [], bytes([0x82, (0x80 if masked else 0) | 127]) + b"\x80" + bytes(7)))
    write(t, "close_then_more", script(0x40, [], hello + f(PING) + f(CLOSE, close_body(1000)) + hello))


def close_frame():
    t = "close_frame"
    write(t, "empty", b"")
    write(t, "one_byte", b"\x03")
    write(t, "1000", close_body(1000))
    write(t, "1000_bye", close_body(1000, b"bye"))
    write(t, "1001_utf8", close_body(1001, "héllo wörld ✓".encode()))
    write(t, "1005", close_body(1005))
    write(t, "1006", close_body(1006))
    write(t, "1015", close_body(1015))
    write(t, "3000", close_body(3000, b"app"))
    write(t, "4999", close_body(4999))
    write(t, "5000", close_body(5000))
    write(t, "bad_utf8", close_body(1000, b"\xff\xfe"))
    write(t, "truncated_utf8", close_body(1000, b"ok\xe2\x82"))
    write(t, "reason_123", close_body(1000, b"r" * 123))
    write(t, "reason_124", close_body(1000, b"r" * 124))
    write(t, "reason_cut_in_char", close_body(1000, "é".encode() * 62))


def inflate_mode(bits, no_context, limit_index):
    """The mode byte of an inflater input (bit 0 clear)."""
    return ((bits - 8) << 1) | (0x10 if no_context else 0) | (limit_index << 5)


def messages(parts):
    """The inflater's message list: count, lengths of all but the last, then the bytes."""
    assert all(len(p) < 256 for p in parts[:-1])
    return bytes([len(parts) - 1] + [len(p) for p in parts[:-1]]) + b"".join(parts)


def deflate_seeds():
    t = "deflate"
    m15 = inflate_mode(15, True, 1)
    write(t, "inflate_hello", bytes([m15]) + messages([HELLO]))
    write(t, "inflate_hello_shared_window", bytes([inflate_mode(15, False, 1)]) + messages([HELLO, HELLO_AGAIN]))
    write(t, "inflate_stored", bytes([m15]) + messages([HELLO_STORED]))
    write(t, "inflate_bfinal_then_more", bytes([inflate_mode(15, False, 1)]) + messages([HELLO_FINAL, HELLO]))
    write(t, "inflate_two_blocks", bytes([m15]) + messages([HELLO_TWO_BLOCKS]))
    write(t, "inflate_bomb", bytes([inflate_mode(15, True, 0)]) + messages([deflate(bytes(100_000))]))
    write(t, "inflate_window_9", bytes([inflate_mode(9, False, 2)]) + messages([deflate(b"abcabcabc" * 40, 9), deflate(b"abc" * 10, 9)]))
    write(t, "inflate_window_8", bytes([inflate_mode(8, True, 1)]) + messages([deflate(b"Hello Hello Hello", 9)]))
    write(t, "inflate_corrupt", bytes([m15]) + messages([b"\xff\xff\xff", HELLO]))
    write(t, "inflate_empty", bytes([m15]) + messages([b""]))
    write(t, "inflate_with_tail", bytes([m15]) + messages([deflate(b"Hello", strip=False)]))

    def endpoint_seed(name, role, setup, flags, steps, stream):
        mode = 0x01 if role == "server" else 0x03
        write(t, name, bytes([mode, setup]) + script(flags, steps, stream))

    for role in ("server", "client"):
        masked = role == "server"

        def f(opcode, payload=b"", fin=True, rsv1=False):
            return frame(opcode, payload, fin=fin, masked=masked, rsv1=rsv1)

        hello = f(TEXT, HELLO, rsv1=True)
        # setup: bit 0 server_no_context_takeover, bit 1 client_no_context_takeover, bits 2-3
        # the server's window, bits 4-5 the client's, bits 6-7 the threshold (0, 8, 64, never).
        shared = 0x03 | (1 << 6)
        takeover = (1 << 6)
        endpoint_seed(role + "_hello", role, shared, 0x00, [], hello)
        endpoint_seed(
            role + "_fragmented_hello", role, shared, 0x00, [],
            f(TEXT, HELLO[:3], fin=False, rsv1=True) + f(PING) + f(CONT, HELLO[3:]),
        )
        endpoint_seed(
            role + "_context_takeover", role, takeover, 0x20, [],
            hello + f(TEXT, HELLO_AGAIN, rsv1=True),
        )
        endpoint_seed(
            role + "_rfc7692_blocks", role, shared, 0x20, [],
            f(TEXT, HELLO_STORED, rsv1=True) + f(TEXT, HELLO_FINAL, rsv1=True)
            + f(TEXT, HELLO_TWO_BLOCKS, rsv1=True),
        )
        endpoint_seed(
            role + "_bomb_over_limit", role, shared, 0x01, [],
            f(BINARY, deflate(bytes(100_000)), rsv1=True),
        )
        endpoint_seed(
            role + "_compressed_bad_utf8", role, shared, 0x00, [],
            f(TEXT, deflate(b"\xff\xfe bad"), rsv1=True),
        )
        endpoint_seed(
            role + "_corrupt", role, shared, 0x00, [], f(BINARY, b"\xff\xff\xff", rsv1=True),
        )
        endpoint_seed(
            role + "_rsv1_on_continuation", role, shared, 0x00, [],
            f(TEXT, HELLO[:3], fin=False, rsv1=True) + f(CONT, HELLO[3:], rsv1=True),
        )
        endpoint_seed(role + "_rsv1_on_ping", role, shared, 0x00, [], f(PING, b"x", rsv1=True))
        # Small windows both ways, threshold 0: every echo and send goes compressed.
        windows = 0x01 | (1 << 2) | (1 << 4)
        endpoint_seed(
            role + "_windows_echo_sends", role, windows, 0x20, [(0x93, 0), (0xA0, 4)],
            b"wxyz" + f(TEXT, deflate(b"abcabcabc" * 20, 9), rsv1=True) + f(BINARY, b"raw"),
        )
        endpoint_seed(
            role + "_uncompressed_too", role, 0x0A | (2 << 6), 0x20, [],
            f(TEXT, b"plain") + hello + f(CLOSE, close_body(1000)),
        )


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    handshake_request()
    client_handshake()
    endpoint("server")
    endpoint("client")
    close_frame()
    deflate_seeds()
    for target in sorted(os.listdir(ROOT)):
        print(target, len(os.listdir(os.path.join(ROOT, target))))


if __name__ == "__main__":
    main()
