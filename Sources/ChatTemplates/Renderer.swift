import Foundation

/// Runs a parsed template: jinja2's semantics for the statements and expressions the parser accepts, with every
/// allocation and step charged to a budget so that a hostile template ends with an error instead of hanging.
struct Renderer {
    let lexer: Lexer
    let limits: ChatTemplateLimits
    let now: Date
    /// Innermost last; the first holds the render's variables.
    var scopes: [[String: Value]]
    var output = ""
    private var work = 0
    private var depth = 0

    enum Flow { case normal, breakLoop, continueLoop }

    init(lexer: Lexer, limits: ChatTemplateLimits, now: Date, variables: [String: Value]) {
        self.lexer = lexer
        self.limits = limits
        self.now = now
        var globals: [String: Value] = [:]
        for name in ["raise_exception", "strftime_now", "namespace", "range", "dict", "lipsum", "cycler", "joiner"] {
            globals[name] = .function(name)
        }
        scopes = [globals.merging(variables) { _, new in new }]
    }

    // MARK: Budget and errors

    func fail(_ message: String, at offset: Int) -> ChatTemplateError { .runtime(message, lexer.position(of: offset)) }

    mutating func charge(_ amount: Int = 1, at offset: Int) throws(ChatTemplateError) {
        work += amount
        if work > limits.maxWork {
            throw ChatTemplateError.limit("rendering took more than \(limits.maxWork) steps (near \(lexer.position(of: offset)))")
        }
    }

    /// Charges a new string to the budget and checks its size.
    mutating func made(_ text: String, at offset: Int) throws(ChatTemplateError) -> Value {
        let bytes = text.utf8.count
        if bytes > limits.maxOutputBytes {
            throw ChatTemplateError.limit("a string of more than \(limits.maxOutputBytes) bytes (at \(lexer.position(of: offset)))")
        }
        try charge(1 + bytes / 16, at: offset)
        return .string(text)
    }

    mutating func made(list items: [Value], tuple: Bool = false, at offset: Int) throws(ChatTemplateError) -> Value {
        if items.count > limits.maxListItems {
            throw ChatTemplateError.limit("a list of more than \(limits.maxListItems) items (at \(lexer.position(of: offset)))")
        }
        try charge(1 + items.count, at: offset)
        return tuple ? .tuple(items) : .list(items)
    }

    /// Python's `str()`, bounded.
    mutating func text(of value: Value, at offset: Int) throws(ChatTemplateError) -> String {
        if case .string(let text) = value { return text }
        var text = ""
        guard value.write(into: &text, representation: false, limit: limits.maxOutputBytes) else {
            throw ChatTemplateError.limit("a value whose text is more than \(limits.maxOutputBytes) bytes (at \(lexer.position(of: offset)))")
        }
        try charge(1 + text.utf8.count / 16, at: offset)
        return text
    }

    /// Refuses a value whose containers nest deeper than the limit: freeing or printing one would recurse as deep.
    mutating func checkNesting(_ value: Value, at offset: Int) throws(ChatTemplateError) -> Value {
        var visits = 0
        let depth = value.nestingDepth(limit: limits.maxNesting, visits: &visits)
        try charge(visits / 4, at: offset)
        if depth > limits.maxNesting {
            throw ChatTemplateError.limit("values nested more than \(limits.maxNesting) levels deep (at \(lexer.position(of: offset)))")
        }
        return value
    }

    func undefinedError(_ value: Value, at offset: Int) -> ChatTemplateError {
        if case .undefined(let hint) = value { return fail(hint, at: offset) }
        return fail("undefined value", at: offset)
    }

    // MARK: Statements

    mutating func execute(_ statements: [Statement]) throws(ChatTemplateError) -> Flow {
        for statement in statements {
            let flow = try execute(statement)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private mutating func emit(_ text: String, at offset: Int) throws(ChatTemplateError) {
        if output.utf8.count + text.utf8.count > limits.maxOutputBytes {
            throw ChatTemplateError.limit("the rendered text would exceed \(limits.maxOutputBytes) bytes (at \(lexer.position(of: offset)))")
        }
        try charge(1 + text.utf8.count / 16, at: offset)
        output += text
    }

    private mutating func execute(_ statement: Statement) throws(ChatTemplateError) -> Flow {
        switch statement {
        case .text(let text):
            try emit(text, at: 0)
        case .output(let expression):
            let value = try evaluate(expression)
            try emit(try text(of: value, at: expression.offset), at: expression.offset)
        case .conditional(let branches, let otherwise):
            for (condition, body) in branches where try evaluate(condition).isTruthy {
                return try execute(body)
            }
            return try execute(otherwise)
        case .loop(let target, let iterable, let filter, let body, let otherwise, let offset):
            try enter(at: offset)
            defer { depth -= 1 }
            var items = try iterate(try evaluate(iterable), at: iterable.offset)
            if let filter {
                var kept: [Value] = []
                for item in items {
                    scopes.append([:])
                    try assign(target, item, at: offset)
                    let keep = try evaluate(filter).isTruthy
                    scopes.removeLast()
                    if keep { kept.append(item) }
                }
                items = kept
            }
            for (index, item) in items.enumerated() {
                try charge(at: offset)
                let state = Value.LoopState(
                    index0: index, length: items.count, previous: index > 0 ? items[index - 1] : nil,
                    next: index + 1 < items.count ? items[index + 1] : nil)
                scopes.append(["loop": .loop(state)])
                try assign(target, item, at: offset)
                let flow = try execute(body)
                scopes.removeLast()
                if flow == .breakLoop { break }
            }
            if items.isEmpty { return try execute(otherwise) }
        case .assign(let target, let expression, let offset):
            try assign(target, try evaluate(expression), at: offset)
        case .assignBlock(let target, let body, let offset):
            let saved = output
            output = ""
            _ = try execute(body)
            let captured = output
            output = saved
            try assign(target, .string(captured), at: offset)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private mutating func enter(at offset: Int) throws(ChatTemplateError) {
        depth += 1
        if depth > limits.maxNesting {
            throw ChatTemplateError.limit("rendering nested more than \(limits.maxNesting) levels deep (at \(lexer.position(of: offset)))")
        }
    }

    private mutating func assign(_ target: AssignmentTarget, _ value: Value, at offset: Int) throws(ChatTemplateError) {
        switch target {
        case .name(let name):
            scopes[scopes.count - 1][name] = value
        case .names(let names):
            let items = try iterate(value, at: offset)
            guard items.count == names.count else {
                throw fail("cannot unpack \(items.count) values into \(names.count) names", at: offset)
            }
            for (name, item) in zip(names, items) { scopes[scopes.count - 1][name] = item }
        case .attribute(let name, let attribute):
            guard case .namespace(let namespace)? = lookup(name) else {
                throw fail("cannot assign attribute on non-namespace object \"\(name)\"", at: offset)
            }
            guard !attribute.hasPrefix("_") else { throw fail("a namespace attribute cannot start with an underscore: \(attribute)", at: offset) }
            namespace.attributes.set(.string(attribute), try checkNesting(value, at: offset))
            _ = try checkNesting(.namespace(namespace), at: offset)
        }
    }

    func lookup(_ name: String) -> Value? {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        return nil
    }

    /// The items a for loop (or unpacking, join, list...) goes through.
    mutating func iterate(_ value: Value, at offset: Int) throws(ChatTemplateError) -> [Value] {
        switch value {
        case .undefined: return []
        case .list(let items), .tuple(let items): return items
        case .dictionary(let dictionary): return dictionary.entries.map(\.key)
        case .string(let text):
            try charge(text.unicodeScalars.count, at: offset)
            return text.unicodeScalars.map { .string(String($0)) }
        default: throw fail("'\(value.typeName)' object is not iterable", at: offset)
        }
    }

    // MARK: Expressions

    mutating func evaluate(_ expression: Expression) throws(ChatTemplateError) -> Value {
        try charge(at: expression.offset)
        try enter(at: expression.offset)
        defer { depth -= 1 }
        let offset = expression.offset
        switch expression.kind {
        case .constant(let constant):
            return constant.value
        case .name(let name):
            return lookup(name) ?? .undefined(hint: "'\(name)' is undefined")
        case .list(let items):
            var values: [Value] = []
            for item in items { values.append(try evaluate(item)) }
            return try checkNesting(try made(list: values, at: offset), at: offset)
        case .tuple(let items):
            var values: [Value] = []
            for item in items { values.append(try evaluate(item)) }
            return try checkNesting(try made(list: values, tuple: true, at: offset), at: offset)
        case .dictionary(let pairs):
            var dictionary = Value.Dictionary()
            for (key, value) in pairs { dictionary.set(try evaluate(key), try evaluate(value)) }
            try charge(pairs.count * pairs.count / 8, at: offset)
            return try checkNesting(.dictionary(dictionary), at: offset)
        case .attribute(let base, let name):
            return try attribute(name, of: try evaluate(base), at: offset)
        case .item(let base, let key):
            return try item(try evaluate(key), of: try evaluate(base), at: offset)
        case .slice(let base, let start, let stop, let step):
            return try slice(
                try evaluate(base), start: try start.map { e throws(ChatTemplateError) in try evaluate(e) },
                stop: try stop.map { e throws(ChatTemplateError) in try evaluate(e) },
                step: try step.map { e throws(ChatTemplateError) in try evaluate(e) }, at: offset)
        case .call(let callee, let arguments):
            let function = try evaluate(callee)
            return try call(function, try evaluate(arguments), at: offset)
        case .filter(let base, let name, let arguments):
            return try filter(name, try evaluate(base), try evaluate(arguments), at: offset)
        case .test(let base, let name, let arguments):
            return .bool(try test(name, try evaluate(base), try evaluate(arguments), at: offset))
        case .negate(let operand):
            switch try evaluate(operand).numeric {
            case .int(let value)?:
                guard value != .min else { throw fail("integer overflow", at: offset) }
                return .int(-value)
            case .double(let value)?: return .double(-value)
            default: throw fail("bad operand type for unary -", at: offset)
            }
        case .plus(let operand):
            guard let value = try evaluate(operand).numeric else { throw fail("bad operand type for unary +", at: offset) }
            return value
        case .not(let operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case .and(let left, let right):
            let value = try evaluate(left)
            return value.isTruthy ? try evaluate(right) : value
        case .or(let left, let right):
            let value = try evaluate(left)
            return value.isTruthy ? value : try evaluate(right)
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left), try evaluate(right), at: offset)
        case .compare(let first, let operations):
            var left = try evaluate(first)
            for (op, operand) in operations {
                let right = try evaluate(operand)
                guard try compare(op, left, right, at: operand.offset) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map { e throws(ChatTemplateError) in try evaluate(e) }
                ?? .undefined(hint: "the inline if expression at \(lexer.position(of: offset)) evaluated to false and has no else")
        }
    }

    struct Call {
        var positional: [Value]
        var named: [(name: String, value: Value)]

        func argument(_ index: Int, _ name: String) -> Value? {
            if let value = named.first(where: { $0.name == name })?.value { return value }
            return index < positional.count ? positional[index] : nil
        }
    }

    mutating func evaluate(_ arguments: Arguments) throws(ChatTemplateError) -> Call {
        var call = Call(positional: [], named: [])
        for argument in arguments.positional { call.positional.append(try evaluate(argument)) }
        for (name, argument) in arguments.named { call.named.append((name, try evaluate(argument))) }
        return call
    }

    // MARK: Lookup

    static let dictionaryMethods: Set<String> = ["items", "keys", "values", "get", "copy", "update", "pop", "popitem", "clear", "setdefault"]
    static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "upper", "lower", "title", "capitalize",
        "replace", "join", "find", "count", "format", "splitlines", "isdigit", "isspace", "isalpha", "isalnum", "isupper", "islower",
    ]
    static let listMethods: Set<String> = ["append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "index", "count", "copy"]

    /// jinja2's `getattr`: the attribute, else the item of that name.
    mutating func attribute(_ name: String, of value: Value, at offset: Int) throws(ChatTemplateError) -> Value {
        if name.hasPrefix("_") { throw fail("access to attribute '\(name)' of '\(value.typeName)' object is unsafe", at: offset) }
        switch value {
        case .undefined: throw undefinedError(value, at: offset)
        case .dictionary(let dictionary):
            if Self.dictionaryMethods.contains(name) { return .method(receiver: Value.Box(value), name: name) }
            return dictionary[.string(name)] ?? .undefined(hint: "'dict object' has no attribute '\(name)'")
        case .string:
            if Self.stringMethods.contains(name) { return .method(receiver: Value.Box(value), name: name) }
        case .list, .tuple:
            if Self.listMethods.contains(name) { return .method(receiver: Value.Box(value), name: name) }
        case .namespace(let namespace):
            return namespace.attributes[.string(name)] ?? .undefined(hint: "'Namespace object' has no attribute '\(name)'")
        case .loop(let state):
            switch name {
            case "index0": return .int(state.index0)
            case "index": return .int(state.index0 + 1)
            case "revindex": return .int(state.length - state.index0)
            case "revindex0": return .int(state.length - state.index0 - 1)
            case "first": return .bool(state.index0 == 0)
            case "last": return .bool(state.index0 == state.length - 1)
            case "length": return .int(state.length)
            case "depth": return .int(1)
            case "depth0": return .int(0)
            case "previtem": return state.previous ?? .undefined(hint: "there is no previous item")
            case "nextitem": return state.next ?? .undefined(hint: "there is no next item")
            case "cycle": return .method(receiver: Value.Box(value), name: name)
            default: break
            }
        default: break
        }
        return .undefined(hint: "'\(value.typeName) object' has no attribute '\(name)'")
    }

    /// jinja2's `getitem`: the item, else the attribute of that name.
    mutating func item(_ key: Value, of value: Value, at offset: Int) throws(ChatTemplateError) -> Value {
        switch value {
        case .undefined: throw undefinedError(value, at: offset)
        case .list(let items), .tuple(let items):
            guard case .int(var index)? = key.numeric else {
                if case .string(let name) = key { return try attribute(name, of: value, at: offset) }
                throw fail("list indices must be integers, not \(key.typeName)", at: offset)
            }
            if index < 0 { index += items.count }
            return items.indices.contains(index) ? items[index] : .undefined(hint: "list object has no element \(key.representation)")
        case .string(let text):
            guard case .int(var index)? = key.numeric else {
                if case .string(let name) = key { return try attribute(name, of: value, at: offset) }
                throw fail("string indices must be integers, not \(key.typeName)", at: offset)
            }
            let scalars = Array(text.unicodeScalars)
            try charge(scalars.count / 16, at: offset)
            if index < 0 { index += scalars.count }
            return scalars.indices.contains(index) ? .string(String(scalars[index])) : .undefined(hint: "str object has no element \(index)")
        case .dictionary(let dictionary):
            if let found = dictionary[key] { return found }
            if case .string(let name) = key, Self.dictionaryMethods.contains(name) { return try attribute(name, of: value, at: offset) }
            return .undefined(hint: "'dict object' has no attribute \(key.representation)")
        case .namespace, .loop:
            if case .string(let name) = key { return try attribute(name, of: value, at: offset) }
            return .undefined(hint: "'\(value.typeName) object' has no element \(key.representation)")
        default:
            return .undefined(hint: "'\(value.typeName) object' has no element \(key.representation)")
        }
    }

    /// Python's slice of a list, tuple or string.
    mutating func slice(_ value: Value, start: Value?, stop: Value?, step: Value?, at offset: Int) throws(ChatTemplateError) -> Value {
        func integer(_ bound: Value?) throws(ChatTemplateError) -> Int? {
            switch bound {
            case nil, .none?, .undefined?: return nil
            case let bound?:
                guard case .int(let value)? = bound.numeric else {
                    throw fail("slice indices must be integers or None, not \(bound.typeName)", at: offset)
                }
                return value
            }
        }
        let stepValue = try integer(step) ?? 1
        guard stepValue != 0 else { throw fail("slice step cannot be zero", at: offset) }
        func indices(count: Int) throws(ChatTemplateError) -> [Int] {
            func clamp(_ raw: Int?, _ defaultValue: Int) -> Int {
                guard var index = raw else { return defaultValue }
                if index < 0 { index += count }
                return stepValue > 0 ? min(max(index, 0), count) : min(max(index, -1), count - 1)
            }
            let first = clamp(try integer(start), stepValue > 0 ? 0 : count - 1)
            let last = clamp(try integer(stop), stepValue > 0 ? count : -1)
            return Array(stride(from: first, to: last, by: stepValue))
        }
        switch value {
        case .undefined: throw undefinedError(value, at: offset)
        case .list(let items), .tuple(let items):
            var isTuple = false
            if case .tuple = value { isTuple = true }
            return try made(list: try indices(count: items.count).map { items[$0] }, tuple: isTuple, at: offset)
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            var result = String.UnicodeScalarView()
            for index in try indices(count: scalars.count) { result.append(scalars[index]) }
            return try made(String(result), at: offset)
        default:
            throw fail("'\(value.typeName)' object is not subscriptable", at: offset)
        }
    }
}
