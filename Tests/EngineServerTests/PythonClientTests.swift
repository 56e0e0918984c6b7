import Foundation
import LlamaModel
import Testing

/// protocol/client/tributary_client.py (standard library only, written from the specification) against a
/// real server: the specification is enough to interoperate.
@Suite struct PythonClientTests {
    static let clientFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocol/client").path

    static let script = """
        import hashlib, json, sys
        sys.path.insert(0, sys.argv[1])
        from tributary_client import Client, ServerError
        port, token = int(sys.argv[2]), sys.argv[3]
        c = Client.connect("127.0.0.1", port, token=token, stream_credits=2)
        out = {"contributor": c.welcome["contributor"], "health": c.call("Health", {})[1]["state"]}
        tokens, end = [], None
        for name, fields in c.stream("Infer", {"adapter": None, "prompt": "from python", "max_tokens": 30,
                "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0, "stop": [], "method": "off",
                "top_records": 0, "fee": 0, "idempotency_key": ""}):
            if name == "Token" and fields["token"] != 0xFFFFFFFF:  # that one only flushes an unfinished character
                tokens.append(fields["token"])
            elif name == "InferEnd":
                end = fields
        out["tokens"], out["stop_reason"], out["completion_tokens"] = tokens, end["stop_reason"], end["completion_tokens"]
        name, dn = c.call("DatanetCreate", {"name": "py-net", "summary": "", "description": "", "tags": [],
                "license": "MIT", "visibility": "public"})
        out["datanet"] = dn["datanet"]["name"]
        net = dn["datanet"]["id"]
        try:
            c.call("Export", {"version": {"datanet": net, "number": 1}})
        except ServerError as e:
            out["export_error"] = e.code
        for text in [b"first line from python", b'second line, "quoted"']:
            _, rec = c.call("Contribute", {"datanet": net, "content": {"arm": "text", "text": text}})
            c.call("Review", {"record": rec["record"]["id"], "decision": "approve", "note": None})
        c.call("Publish", {"datanet": net})
        chunks, end = [], None
        for name, fields in c.stream("Export", {"version": {"datanet": net, "number": 1}}):
            if name == "ExportChunk":
                chunks.append(fields["jsonl"])
            else:
                end = fields
        export = b"".join(chunks)
        out["export_lines"] = [json.loads(line)["text"] for line in export.decode().splitlines()]
        out["export_checked"] = end["records"] == 2 and end["bytes"] == len(export) and \
            bytes(end["sha256"]) == hashlib.sha256(export).digest()
        c.close()
        anonymous = Client.connect("127.0.0.1", port)
        try:
            anonymous.call("Publish", {"datanet": 1})
        except ServerError as e:
            out["anonymous_error"] = e.code
        _, signed = anonymous.call("SignUp", {"display_name": "py-user"})
        anonymous.close()
        user = Client.connect("127.0.0.1", port, token=signed["token"])
        out["signed_up"] = user.welcome["contributor"] == signed["contributor"]
        _, listing = user.call("DatanetList", {"datanet": None, "owner": None})
        out["listing"] = [[d["datanet"]["name"], len(d["versions"]), d["approved"], d["pending"]] for d in listing["datanets"]]
        user.close()
        print(json.dumps(out))
        """

    static let python3 = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: python3 != nil, "needs python3"))
    func thePythonClientHandshakesStreamsExportsSignsUpAndIsRefusedCorrectly() async throws {
        let generator = try randomGenerator()
        let server = try await TestServer.start(generator: generator)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python3!)
        process.arguments = ["-c", Self.script, Self.clientFolder, String(server.port), server.token]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read on a thread of its own, not a cooperative one: the server runs in this process and its accept
        // loop needs the cooperative pool while the script runs.
        let (stdout, stderr) = await withCheckedContinuation { finished in
            Thread.detachNewThread {
                let stdout = output.fileHandleForReading.readDataToEndOfFile()
                let stderr = errors.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                finished.resume(returning: (stdout, stderr))
            }
        }
        #expect(process.terminationStatus == 0, "\(String(decoding: stderr, as: UTF8.self))")
        let report = try #require(try JSONSerialization.jsonObject(with: stdout) as? [String: Any])
        let local = try generator.generate(prompt: "from python", options: GenerationOptions(maxNewTokens: 30))
        #expect(report["contributor"] as? Int == Int(server.contributor.rawValue))
        #expect(report["health"] as? String == "serving")
        #expect(report["tokens"] as? [Int] == local.tokens)
        #expect(report["stop_reason"] as? String == "max_tokens" && report["completion_tokens"] as? Int == 30)
        #expect(report["datanet"] as? String == "py-net")
        #expect(report["export_error"] as? Int == 203)
        #expect(report["export_lines"] as? [String] == ["first line from python", #"second line, "quoted""#])
        #expect(report["export_checked"] as? Bool == true)
        #expect(report["signed_up"] as? Bool == true)
        // The new contributor sees the public datanet: one version, two approved records, none pending.
        let listing = try #require(report["listing"] as? [[Any]])
        #expect(listing.count == 1 && listing[0].first as? String == "py-net")
        #expect(listing.first?.dropFirst().compactMap { $0 as? Int } == [1, 2, 0])
        #expect(report["anonymous_error"] as? Int == 200)
        try await server.stop()
    }
}
