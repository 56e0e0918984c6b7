"""Writes protocol/vectors/frames.json: one valid frame per message type (plus hand-picked ones) and invalid frames
with the error each must produce. The values are deterministic; rerun after changing the catalogue.

    python3 protocol/tools/make_vectors.py
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "client"))
from tributary_client import HEADER, Catalogue, Codec, FLAG_FINAL, HELLO_MAGIC, SCALARS  # noqa: E402

OUTPUT = os.path.join(HERE, "..", "vectors", "frames.json")
cat = Catalogue.load()
codec = Codec(cat)


def example(type_, n):
    """A deterministic value of `type_`, varied by n; floats are exact in binary so JSON keeps them."""
    if type_.endswith("?"):
        return None if n % 3 == 0 else example(type_[:-1], n + 1)
    if type_.startswith("["):
        return [example(type_[1:-1], n + 7 * i) for i in range(n % 3)]
    scalars = {
        "u8": n % 256, "u16": (n * 257) % 65536, "u32": n * 1000003 % 2**32, "u64": n * 3_000_000_019,
        "i64": -n * 1_000_000_007 if n % 2 else n * 77, "f32": n * 0.25 - 1.5, "f64": n / 1024 - 3.0,
        "bool": n % 2 == 1, "string": ["", "medical-qa", "Grüße ✓", "trb_x"][n % 4],
        "bytes": bytes((n + i) % 256 for i in range(n % 5 * 8)),
        "tensor": {"shape": [2, n % 3 + 1], "data": [i * 0.5 - 1 for i in range(2 * (n % 3 + 1))]},
    }
    if type_ in scalars:
        return scalars[type_]
    if type_ in cat.enums:
        names = cat.enums[type_]["names"]
        return names[sorted(names)[n % len(names)]]
    if type_ in cat.structs:
        return {f: example(t, n + i) for i, (f, t) in enumerate(cat.structs[type_])}
    if type_ in cat.unions:
        _, arm, struct_name = cat.unions[type_][n % len(cat.unions[type_])]
        return {"arm": arm, **(example(struct_name, n) if struct_name else {})}
    raise ValueError(type_)


def valid(name, message, fields, request_id, flags=0):
    frame = codec.encode_frame(message, fields, request_id, flags)
    return {"name": name, "hex": frame.hex(), "type": cat.messages[message]["code"], "message": message,
            "request_id": request_id, "flags": flags, "fields": codec.message_to_json(message, fields)}


def header(length, type_code, version=1, flags=0, request_id=1):
    return HEADER.pack(length, version, type_code, flags, request_id)


def invalid(name, payload_or_frame, error, type_code=None, max_payload=1 << 20, **header_args):
    frame = payload_or_frame if type_code is None else header(len(payload_or_frame), type_code, **header_args) + payload_or_frame
    return {"name": name, "hex": frame.hex(), "max_payload": max_payload, "error": error}


vectors = [
    valid("hello", "Hello", {"magic": HELLO_MAGIC, "min_version": 1, "max_version": 1, "features": 0,
                             "auth_token": "trb_token", "max_frame_size": 1 << 20, "stream_credits": 64,
                             "client_name": "py"}, 0),
    valid("welcome", "Welcome", {"version": 1, "features": 0, "max_frame_size": 1 << 20,
                                 "max_concurrent_requests": 256, "contributor": 7, "server_name": "engine"}, 0),
    valid("infer", "Infer", {"adapter": 3, "prompt": "Hi", "max_tokens": 16, "temperature": 0.5, "top_k": 40,
                             "top_p": 0.875, "seed": 42, "stop": ["\n"], "method": "datainf", "top_records": 5,
                             "fee": 1_000_000, "idempotency_key": "k-1", "chat": None}, 5),
    valid("infer_chat", "Infer", {"adapter": None, "prompt": "", "max_tokens": 8, "temperature": 0, "top_k": 0,
                                  "top_p": 1, "seed": 0, "stop": [], "method": "off", "top_records": 0, "fee": 0,
                                  "idempotency_key": "", "chat": [{"role": "system", "content": "Be brief."},
                                                                  {"role": "user", "content": "Héllo"}]}, 7),
    valid("token", "Token", {"index": 0, "token": 72, "text": "H"}, 5),
    valid("infer_end", "InferEnd", {"stop_reason": "max_tokens", "prompt_tokens": 2, "completion_tokens": 16,
                                    "prompt_us": 1500, "generation_us": 64000}, 5),
    valid("attribution_with_tensor", "Attribution", {
        "method": "datainf", "inference": 9,
        "top": [{"record": 1, "contributor": 3, "datanet": 2, "score": 0.75}],
        "negative": [{"record": 4, "contributor": 5, "datanet": 2, "score": -0.125}],
        "contributors": [{"contributor": 3, "share": 1.0}], "datanets": [{"datanet": 2, "share": 1.0}],
        "all_scores": {"shape": [2], "data": [0.75, -0.125]}}, 5),
    valid("reward_split_final", "RewardSplit", {
        "inference": 9, "fee": 19, "contributor_pool": 13, "owner": 3, "protocol_share": 3, "forfeited": 0,
        "payouts": [{"contributor": 3, "share": 0.6, "gross": 8, "paid": 8, "penalty_points": 0}],
        "ledger_head": {"seq": 4, "hash": bytes(range(32))}}, 5, FLAG_FINAL),
    valid("credit", "Credit", {"credits": 16}, 5),
    valid("cancel", "Cancel", {}, 5),
    valid("error_overloaded", "ErrorReply", {"code": 400, "retry_after_ms": 250, "message": "overloaded"}, 6,
          FLAG_FINAL),
    valid("error_version_refused", "ErrorReply", {"code": 101, "retry_after_ms": 0,
                                                  "message": "server speaks 1...1, client offered 2...3"}, 0,
          FLAG_FINAL),
    valid("contribute_pair", "Contribute", {"datanet": 2, "content": {"arm": "pair", "prompt": b"Q?",
                                                                     "completion": b"A."}}, 11),
    valid("health", "Health", {}, 2**64 - 1),
]
for i, (message, spec) in enumerate(sorted(cat.messages.items(), key=lambda kv: kv[1]["code"])):
    fields = {f: example(t, i + j) for j, (f, t) in enumerate(spec["fields"])}
    request_id = 0 if spec["direction"] == "connection" else i + 1
    vectors.append(valid(f"every_type_{message}", message, fields, request_id, FLAG_FINAL if i % 2 else 0))

ping = cat.messages["Ping"]["code"]
invalids = [
    invalid("length_over_limit_header_only", header(0x0100_0001, ping), "frame_too_large"),
    invalid("length_over_negotiated_limit", header(4097, ping), "frame_too_large", max_payload=4096),
    invalid("unsupported_version", struct.pack(">Q", 1), "unsupported_version", ping, version=2),
    invalid("reserved_flag_bits", struct.pack(">Q", 1), "reserved_flags", ping, flags=0x0002),
    invalid("unknown_message_type", b"", "unknown_message_type", 0xFF),
    invalid("payload_too_short", b"\x00\x00\x00\x01", "truncated", ping),
    invalid("payload_too_long", struct.pack(">Q", 1) + b"\x00", "trailing_bytes", ping),
    invalid("bool_not_0_or_1", struct.pack(">qBQ", 1, 2, 0), "invalid_bool", cat.messages["AdapterState"]["code"]),
    invalid("optional_tag_2", b"\x02" + struct.pack(">q", 1), "invalid_optional_tag",
            cat.messages["AdapterList"]["code"]),
    invalid("enum_out_of_range", struct.pack(">IIIII", 0, 0, 0, 0, 0) + b"\x07", "invalid_enum",
            cat.messages["DatanetCreate"]["code"]),
    invalid("union_arm_out_of_range", struct.pack(">q", 1) + b"\x09", "invalid_enum",
            cat.messages["Contribute"]["code"]),
    invalid("string_not_utf8", struct.pack(">III", 0, 0, 2) + b"\xc3\x28", "invalid_utf8",
            cat.messages["Token"]["code"]),
    invalid("array_count_beyond_payload", struct.pack(">I", 0xFFFF_FFFF), "count_exceeds_payload",
            cat.messages["Balances"]["code"]),
    invalid("string_length_beyond_payload", struct.pack(">III", 0, 0, 1000) + b"ab", "count_exceeds_payload",
            cat.messages["Token"]["code"]),
    invalid("tensor_rank_9", struct.pack(">B", 0) + b"\x00" + struct.pack(">IIII", 0, 0, 0, 0) + b"\x01\x09",
            "invalid_tensor", cat.messages["Attribution"]["code"]),
    invalid("tensor_shape_beyond_payload", struct.pack(">B", 0) + b"\x00" + struct.pack(">IIII", 0, 0, 0, 0)
            + b"\x01\x02" + struct.pack(">II", 0xFFFF_FFFF, 0xFFFF_FFFF), "truncated",
            cat.messages["Attribution"]["code"]),
]

with open(OUTPUT, "w", encoding="utf-8") as f:
    json.dump({"protocol_version": 1, "header": ">IBBHQ (length, version, type, flags, request_id)",
               "valid": vectors, "invalid": invalids}, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{len(vectors)} valid and {len(invalids)} invalid vectors -> {os.path.relpath(OUTPUT)}")
