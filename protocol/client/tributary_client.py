"""A minimal Tributary wire-protocol client, written from protocol/PROTOCOL.md (Python 3, standard library only).

Values: a message or struct is a dict of its fields; an enum value is its name ("public"); a union is a dict
{"arm": name, **fields of the arm's struct}; bytes are `bytes`; a tensor is {"shape": [...], "data": [...]};
an absent optional is None.

    client = Client.connect("127.0.0.1", 7070, token="trb_...")
    for frame in client.stream("Infer", {...}):
        ...
"""

import os
import socket
import struct
import sys

CATALOGUE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "catalogue.txt")

HEADER = struct.Struct(">IBBHQ")  # length, version, type, flags, request id: 16 bytes, big-endian
HEADER_SIZE = HEADER.size
PROTOCOL_VERSION = 1
HELLO_MAGIC = 0x54524257  # "TRBW"
FLAG_FINAL = 0x0001
KNOWN_FLAGS = FLAG_FINAL
ABSOLUTE_MAX_FRAME = 1 << 24  # payload bytes; no negotiation may exceed it
HANDSHAKE_MAX_FRAME = 1 << 16  # payload limit before WELCOME

SCALARS = {
    "u8": struct.Struct(">B"), "u16": struct.Struct(">H"), "u32": struct.Struct(">I"), "u64": struct.Struct(">Q"),
    "i64": struct.Struct(">q"), "f32": struct.Struct(">f"), "f64": struct.Struct(">d"),
}
MAX_TENSOR_RANK = 8


class WireError(Exception):
    """A frame or payload that does not follow the specification; `kind` names the rule it breaks."""

    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class ServerError(Exception):
    """An ERROR frame: a numeric code, its retry class and the server's message."""

    def __init__(self, code, retry_after_ms, message):
        super().__init__(f"error {code} ({retry_class(code)}): {message}")
        self.code, self.retry_after_ms, self.message = code, retry_after_ms, message


def retry_class(code):
    """PROTOCOL.md, Errors: the class is a function of the code's range."""
    if 300 <= code < 400:
        return "retryable"
    if 400 <= code < 500:
        return "overloaded"
    return "not_retryable"


# ---------------------------------------------------------------- the catalogue

class Catalogue:
    """protocol/catalogue.txt, parsed: enums, structs, unions and messages."""

    def __init__(self, text):
        self.enums, self.structs, self.unions = {}, {}, {}
        self.messages, self.message_codes = {}, {}
        current = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].rstrip()
            if not line:
                continue
            words = line.split()
            if not raw.startswith(" "):
                kind = words[0]
                if kind == "enum":
                    current = self.enums.setdefault(words[1], {"names": {}, "codes": {}})
                elif kind in ("struct", "union"):
                    current = (self.structs if kind == "struct" else self.unions).setdefault(words[1], [])
                elif kind == "message":
                    code = int(words[1], 16)
                    current = {"code": code, "name": words[2], "direction": words[3],
                               "stream": "stream" in words[4:], "fields": []}
                    self.messages[words[2]] = current
                    self.message_codes[code] = current
                else:
                    raise ValueError(f"catalogue line {number}: unknown declaration {kind!r}")
                current_kind = kind
            elif current_kind == "enum":
                code, name = int(words[0]), words[1]
                current["names"][code], current["codes"][name] = name, code
            elif current_kind == "union":
                current.append((int(words[0]), words[1], words[2] if len(words) > 2 else None))
            else:
                name, type_ = line.strip().split(":", 1)
                (current["fields"] if current_kind == "message" else current).append((name, type_.strip()))

    @classmethod
    def load(cls, path=CATALOGUE_PATH):
        with open(path, encoding="utf-8") as f:
            return cls(f.read())


# ---------------------------------------------------------------- fields

class Reader:
    def __init__(self, data):
        self.data, self.offset = memoryview(data), 0

    def take(self, count, what):
        if count > len(self.data) - self.offset:
            raise WireError("truncated", f"{what} needs {count} bytes, {len(self.data) - self.offset} left")
        start = self.offset
        self.offset += count
        return self.data[start:self.offset]

    def remaining(self):
        return len(self.data) - self.offset


class Codec:
    def __init__(self, catalogue):
        self.cat = catalogue

    # -- encoding
    def encode(self, type_, value, out):
        if type_.endswith("?"):
            if value is None:
                out.append(0)
            else:
                out.append(1)
                self.encode(type_[:-1], value, out)
        elif type_.startswith("["):
            element = type_[1:-1]
            out += SCALARS["u32"].pack(len(value))
            for item in value:
                self.encode(element, item, out)
        elif type_ in SCALARS:
            out += SCALARS[type_].pack(value)
        elif type_ == "bool":
            out.append(1 if value else 0)
        elif type_ == "string":
            data = value.encode("utf-8")
            out += SCALARS["u32"].pack(len(data)) + data
        elif type_ == "bytes":
            out += SCALARS["u32"].pack(len(value)) + bytes(value)
        elif type_ == "tensor":
            shape, data = value["shape"], value["data"]
            out.append(len(shape))
            for dim in shape:
                out += SCALARS["u32"].pack(dim)
            out += struct.pack(f"<{len(data)}f", *data)
        elif type_ in self.cat.enums:
            out.append(self.cat.enums[type_]["codes"][value])
        elif type_ in self.cat.structs:
            self.encode_fields(self.cat.structs[type_], value, out)
        elif type_ in self.cat.unions:
            for code, arm, struct_name in self.cat.unions[type_]:
                if arm == value["arm"]:
                    out.append(code)
                    if struct_name:
                        self.encode(struct_name, value, out)
                    break
            else:
                raise ValueError(f"{type_} has no arm {value['arm']!r}")
        else:
            raise ValueError(f"unknown type {type_!r}")

    def encode_fields(self, fields, value, out):
        for name, type_ in fields:
            # An optional field left out of the dict is absent.
            self.encode(type_, value.get(name) if type_.endswith("?") else value[name], out)

    # -- decoding
    def decode(self, type_, r, where):
        if type_.endswith("?"):
            tag = r.take(1, where)[0]
            if tag > 1:
                raise WireError("invalid_optional_tag", f"{where}: tag {tag}")
            return self.decode(type_[:-1], r, where) if tag else None
        if type_.startswith("["):
            count = SCALARS["u32"].unpack(r.take(4, where))[0]
            if count > r.remaining():  # every element takes at least one byte: refuse before allocating
                raise WireError("count_exceeds_payload", f"{where}: {count} elements, {r.remaining()} bytes left")
            return [self.decode(type_[1:-1], r, f"{where}[{i}]") for i in range(count)]
        if type_ in SCALARS:
            s = SCALARS[type_]
            return s.unpack(r.take(s.size, where))[0]
        if type_ == "bool":
            byte = r.take(1, where)[0]
            if byte > 1:
                raise WireError("invalid_bool", f"{where}: {byte}")
            return byte == 1
        if type_ in ("string", "bytes"):
            count = SCALARS["u32"].unpack(r.take(4, where))[0]
            if count > r.remaining():
                raise WireError("count_exceeds_payload", f"{where}: {count} bytes, {r.remaining()} left")
            data = bytes(r.take(count, where))
            if type_ == "bytes":
                return data
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise WireError("invalid_utf8", f"{where}: byte {e.start}") from None
        if type_ == "tensor":
            rank = r.take(1, where)[0]
            if rank > MAX_TENSOR_RANK:
                raise WireError("invalid_tensor", f"{where}: rank {rank} above {MAX_TENSOR_RANK}")
            shape = [SCALARS["u32"].unpack(r.take(4, where))[0] for _ in range(rank)]
            count = 1
            for dim in shape:
                count *= dim
            if count * 4 > r.remaining():
                raise WireError("truncated", f"{where}: {count} floats, {r.remaining()} bytes left")
            return {"shape": shape, "data": list(struct.unpack(f"<{count}f", r.take(count * 4, where)))}
        if type_ in self.cat.enums:
            code = r.take(1, where)[0]
            names = self.cat.enums[type_]["names"]
            if code not in names:
                raise WireError("invalid_enum", f"{where}: {type_} has no value {code}")
            return names[code]
        if type_ in self.cat.structs:
            return self.decode_fields(self.cat.structs[type_], r, where)
        if type_ in self.cat.unions:
            code = r.take(1, where)[0]
            for arm_code, arm, struct_name in self.cat.unions[type_]:
                if arm_code == code:
                    value = {"arm": arm}
                    if struct_name:
                        value.update(self.decode(struct_name, r, where))
                    return value
            raise WireError("invalid_enum", f"{where}: {type_} has no arm {code}")
        raise ValueError(f"unknown type {type_!r}")

    def decode_fields(self, fields, r, where):
        return {name: self.decode(type_, r, f"{where}.{name}") for name, type_ in fields}

    # -- JSON (the test vectors): bytes as lowercase hex, everything else as is
    def to_json(self, type_, value, inverse=False):
        if value is None:
            return None
        if type_.endswith("?"):
            return self.to_json(type_[:-1], value, inverse)
        if type_.startswith("["):
            return [self.to_json(type_[1:-1], v, inverse) for v in value]
        if type_ == "bytes":
            return bytes.fromhex(value) if inverse else value.hex()
        fields = self.cat.structs.get(type_)
        if type_ in self.cat.unions:
            struct_name = next(s for _, arm, s in self.cat.unions[type_] if arm == value["arm"])
            fields = [("arm", "string")] + (self.cat.structs[struct_name] if struct_name else [])
        if fields is not None:
            return {name: self.to_json(t, value[name], inverse) for name, t in fields}
        return value

    def message_to_json(self, message, fields, inverse=False):
        return {name: self.to_json(t, fields[name], inverse) for name, t in self.cat.messages[message]["fields"]}

    # -- frames
    def encode_frame(self, message, fields, request_id=0, flags=0):
        spec = self.cat.messages[message]
        payload = bytearray()
        self.encode_fields(spec["fields"], fields, payload)
        return HEADER.pack(len(payload), PROTOCOL_VERSION, spec["code"], flags, request_id) + bytes(payload)

    def decode_header(self, header, max_payload):
        length, version, code, flags, request_id = HEADER.unpack(header)
        if length > max_payload:
            raise WireError("frame_too_large", f"payload of {length} bytes, limit {max_payload}")
        if version != PROTOCOL_VERSION:
            raise WireError("unsupported_version", f"frame version {version}")
        if flags & ~KNOWN_FLAGS:
            raise WireError("reserved_flags", f"flags {flags:#06x}")
        return length, code, flags, request_id

    def decode_payload(self, code, payload):
        spec = self.cat.message_codes.get(code)
        if spec is None:
            raise WireError("unknown_message_type", f"type {code:#04x}")
        r = Reader(payload)
        fields = self.decode_fields(spec["fields"], r, spec["name"])
        if r.remaining():
            raise WireError("trailing_bytes", f"{spec['name']}: {r.remaining()} bytes after the last field")
        return spec["name"], fields

    def decode_frame(self, data, max_payload=ABSOLUTE_MAX_FRAME):
        """One whole frame (header and payload) -> (message name, fields, request id, flags)."""
        if len(data) < HEADER_SIZE:
            raise WireError("truncated", f"header needs {HEADER_SIZE} bytes, got {len(data)}")
        length, code, flags, request_id = self.decode_header(data[:HEADER_SIZE], max_payload)
        if len(data) != HEADER_SIZE + length:
            raise WireError("truncated" if len(data) < HEADER_SIZE + length else "trailing_bytes",
                            f"header says {length} payload bytes, got {len(data) - HEADER_SIZE}")
        name, fields = self.decode_payload(code, data[HEADER_SIZE:])
        return name, fields, request_id, flags


# ---------------------------------------------------------------- the connection

class Client:
    """One connection: HELLO/WELCOME, then requests with ids 1, 2, 3, ... whose replies may interleave."""

    def __init__(self, sock, codec, max_frame_size, stream_credits):
        self.sock, self.codec = sock, codec
        self.max_frame_size, self.stream_credits = max_frame_size, stream_credits
        self.next_request_id = 1
        self.pending = {}  # request id -> frames received for it but not yet read
        self.welcome = None

    @classmethod
    def connect(cls, host, port, token="", max_frame_size=1 << 20, stream_credits=64, timeout=30):
        codec = Codec(Catalogue.load())
        client = cls(socket.create_connection((host, port), timeout=timeout), codec, max_frame_size, stream_credits)
        client.send("Hello", {
            "magic": HELLO_MAGIC, "min_version": 1, "max_version": 1, "features": 0, "auth_token": token,
            "max_frame_size": max_frame_size, "stream_credits": stream_credits, "client_name": "tributary_client.py",
        }, request_id=0)
        name, fields, _, _ = client.read_frame(HANDSHAKE_MAX_FRAME)
        if name == "ErrorReply":
            raise ServerError(fields["code"], fields["retry_after_ms"], fields["message"])
        if name != "Welcome":
            raise WireError("handshake", f"expected Welcome, got {name}")
        client.welcome = fields
        return client

    def send(self, message, fields, request_id, flags=0):
        self.sock.sendall(self.codec.encode_frame(message, fields, request_id, flags))

    def _read_exactly(self, count):
        chunks, left = [], count
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read_frame(self, max_payload=None):
        header = self._read_exactly(HEADER_SIZE)
        length, code, flags, request_id = self.codec.decode_header(header, max_payload or self.max_frame_size)
        name, fields = self.codec.decode_payload(code, self._read_exactly(length))
        return name, fields, request_id, flags

    def start(self, message, fields):
        request_id = self.next_request_id
        self.next_request_id += 1
        self.pending[request_id] = []
        self.send(message, fields, request_id)
        return request_id

    def frames(self, request_id):
        """The reply frames of one request, in order, granting credits as stream frames are consumed."""
        while True:
            queue = self.pending[request_id]
            while not queue:
                name, fields, rid, flags = self.read_frame()
                if rid == 0 and name == "GoAway" and request_id > fields["last_request_id"]:
                    raise ServerError(fields["code"], 0, f"not processed: {fields['message']}")
                if rid == 0 and name == "ErrorReply":
                    raise ServerError(fields["code"], fields["retry_after_ms"], fields["message"])
                if rid in self.pending:
                    self.pending[rid].append((name, fields, flags))
            name, fields, flags = queue.pop(0)
            if name == "ErrorReply":
                del self.pending[request_id]
                raise ServerError(fields["code"], fields["retry_after_ms"], fields["message"])
            if self.codec.cat.messages[name]["stream"]:
                self.send("Credit", {"credits": 1}, request_id)
            yield name, fields
            if flags & FLAG_FINAL:
                del self.pending[request_id]
                return

    def call(self, message, fields):
        """A request with a single reply."""
        return list(self.frames(self.start(message, fields)))[-1]

    def stream(self, message, fields):
        return self.frames(self.start(message, fields))

    def cancel(self, request_id):
        self.send("Cancel", {}, request_id)

    def close(self):
        self.sock.close()


if __name__ == "__main__":
    # `python3 tributary_client.py HOST PORT [TOKEN]`: handshake and health check.
    host, port = sys.argv[1], int(sys.argv[2])
    c = Client.connect(host, port, token=sys.argv[3] if len(sys.argv) > 3 else "")
    print("welcome", c.welcome)
    print(c.call("Health", {}))
