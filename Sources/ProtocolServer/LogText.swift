extension StringProtocol {
    /// The text with every control character escaped (`\n`, `\r`, `\t`, `\\`, others as `\u{..}`), for a log
    /// field that came from a client: a client name or message with a line break cannot forge log lines, and
    /// one with terminal escapes cannot rewrite the operator's screen.
    public var escapedForLog: String {
        var escaped = ""
        escaped.reserveCapacity(utf8.count)
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "\\": escaped += "\\\\"
            case _ where scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
                || scalar == "\u{2028}" || scalar == "\u{2029}":
                escaped += "\\u{\(String(scalar.value, radix: 16))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
