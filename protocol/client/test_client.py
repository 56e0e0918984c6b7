"""The Python client's codec against protocol/vectors/frames.json, and against frames another implementation wrote.

    python3 protocol/client/test_client.py                       # the vectors
    TRIBUTARY_FRAMES=frames.txt python3 protocol/client/test_client.py   # also: one hex frame per line
"""

import json
import os
import unittest

from tributary_client import Catalogue, Codec, WireError

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "vectors", "frames.json"), encoding="utf-8") as f:
    VECTORS = json.load(f)
CODEC = Codec(Catalogue.load())


class Vectors(unittest.TestCase):
    def test_valid_frames_decode_to_their_fields_and_encode_back(self):
        for v in VECTORS["valid"]:
            with self.subTest(v["name"]):
                name, fields, request_id, flags = CODEC.decode_frame(bytes.fromhex(v["hex"]))
                self.assertEqual((name, request_id, flags), (v["message"], v["request_id"], v["flags"]))
                self.assertEqual(CODEC.message_to_json(name, fields), v["fields"])
                again = CODEC.encode_frame(name, CODEC.message_to_json(name, v["fields"], inverse=True),
                                           request_id, flags)
                self.assertEqual(again.hex(), v["hex"])

    def test_invalid_frames_give_their_error(self):
        for v in VECTORS["invalid"]:
            with self.subTest(v["name"]):
                with self.assertRaises(WireError) as caught:
                    CODEC.decode_frame(bytes.fromhex(v["hex"]), v["max_payload"])
                self.assertEqual(caught.exception.kind, v["error"])

    def test_every_message_type_has_a_vector(self):
        covered = {v["message"] for v in VECTORS["valid"]}
        self.assertEqual(covered, set(CODEC.cat.messages))


@unittest.skipUnless(os.environ.get("TRIBUTARY_FRAMES"), "no foreign frames given")
class ForeignFrames(unittest.TestCase):
    def test_frames_decode_and_encode_to_the_same_bytes(self):
        with open(os.environ["TRIBUTARY_FRAMES"], encoding="ascii") as f:
            lines = [line.strip() for line in f if line.strip()]
        self.assertTrue(lines)
        for line in lines:
            name, fields, request_id, flags = CODEC.decode_frame(bytes.fromhex(line))
            with self.subTest(name):
                self.assertEqual(CODEC.encode_frame(name, fields, request_id, flags).hex(), line)


if __name__ == "__main__":
    unittest.main()
