/// An expression of the template, with where it starts.
/// A literal's value.
enum Constant: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)

    var value: Value {
        switch self {
        case .none: .none
        case .bool(let value): .bool(value)
        case .int(let value): .int(value)
        case .double(let value): .double(value)
        case .string(let value): .string(value)
        }
    }
}

struct Expression: Sendable {
    indirect enum Kind: Sendable {
        case constant(Constant)
        case name(String)
        case list([Expression])
        case tuple([Expression])
        case dictionary([(key: Expression, value: Expression)])
        case attribute(Expression, String)
        case item(Expression, Expression)
        case slice(Expression, start: Expression?, stop: Expression?, step: Expression?)
        case call(Expression, Arguments)
        case filter(Expression, name: String, Arguments)
        case test(Expression, name: String, Arguments)
        case negate(Expression)
        case plus(Expression)
        case not(Expression)
        case and(Expression, Expression)
        case or(Expression, Expression)
        case binary(String, Expression, Expression)
        case compare(Expression, [(op: String, operand: Expression)])
        case conditional(condition: Expression, then: Expression, otherwise: Expression?)
    }
    var kind: Kind
    var offset: Int
}

struct Arguments: Sendable {
    var positional: [Expression] = []
    var named: [(name: String, value: Expression)] = []
}

/// What `set` and `for` assign to.
enum AssignmentTarget: Sendable {
    case name(String)
    case names([String])
    case attribute(namespace: String, attribute: String)
}

/// A statement of the template.
indirect enum Statement: Sendable {
    case text(String)
    case output(Expression)
    case conditional(branches: [(condition: Expression, body: [Statement])], otherwise: [Statement])
    case loop(target: AssignmentTarget, iterable: Expression, filter: Expression?, body: [Statement], otherwise: [Statement], offset: Int)
    case assign(AssignmentTarget, Expression, offset: Int)
    case assignBlock(AssignmentTarget, body: [Statement], offset: Int)
    case breakLoop(offset: Int)
    case continueLoop(offset: Int)
}

/// A recursive-descent parser with jinja2's grammar and operator precedence.
struct Parser {
    let tokens: [Token]
    let lexer: Lexer
    let maxNesting: Int
    private var index = 0
    private var depth = 0
    private var loopDepth = 0

    init(tokens: [Token], lexer: Lexer, maxNesting: Int) {
        self.tokens = tokens
        self.lexer = lexer
        self.maxNesting = maxNesting
    }

    private var current: Token { tokens[index] }
    private func peek(_ ahead: Int = 1) -> Token { tokens[min(index + ahead, tokens.count - 1)] }
    private mutating func advance() -> Token {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func fail(_ message: String, at offset: Int? = nil) -> ChatTemplateError {
        lexer.fail(message, at: offset ?? current.offset)
    }

    private func describe(_ kind: TokenKind) -> String {
        switch kind {
        case .text: "text"
        case .variableBegin: "{{"
        case .variableEnd: "}}"
        case .blockBegin: "{%"
        case .blockEnd: "%}"
        case .name(let name): "\"\(name)\""
        case .string: "a string"
        case .integer(let value): "\(value)"
        case .float(let value): "\(value)"
        case .symbol(let symbol): "\"\(symbol)\""
        case .end: "the end of the template"
        }
    }

    private func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }
    private func isName(_ name: String) -> Bool { current.kind == .name(name) }

    private mutating func expectSymbol(_ symbol: String) throws(ChatTemplateError) {
        guard isSymbol(symbol) else { throw fail("expected \"\(symbol)\", found \(describe(current.kind))") }
        _ = advance()
    }

    private mutating func expectName() throws(ChatTemplateError) -> String {
        guard case .name(let name) = current.kind else { throw fail("expected a name, found \(describe(current.kind))") }
        _ = advance()
        return name
    }

    private mutating func expectBlockEnd() throws(ChatTemplateError) {
        guard current.kind == .blockEnd else { throw fail("expected %}, found \(describe(current.kind))") }
        _ = advance()
    }

    /// One more link of a chain the parser builds in a loop (a + b + c..., x.a.b[0]...|f|g): bounded like nesting,
    /// since the tree it makes is as deep.
    private func link(_ count: inout Int) throws(ChatTemplateError) {
        count += 1
        if depth + count > maxNesting { throw fail("an expression chains more than \(maxNesting) operations") }
    }

    private mutating func nest() throws(ChatTemplateError) {
        depth += 1
        if depth > maxNesting { throw fail("the template nests more than \(maxNesting) levels deep") }
    }

    // MARK: Statements

    /// Statements until a block whose first name is one of `stops` (left unconsumed, after its `{%`).
    mutating func parseBody(until stops: Set<String>) throws(ChatTemplateError) -> (body: [Statement], stop: String?) {
        var body: [Statement] = []
        while true {
            switch current.kind {
            case .end:
                return (body, nil)
            case .text(let text):
                _ = advance()
                body.append(.text(text))
            case .variableBegin:
                _ = advance()
                let expression = try parseTuple()
                guard current.kind == .variableEnd else { throw fail("expected }}, found \(describe(current.kind))") }
                _ = advance()
                body.append(.output(expression))
            case .blockBegin:
                let begin = advance().offset
                guard case .name(let keyword) = current.kind else {
                    throw fail("expected a statement name after {%, found \(describe(current.kind))")
                }
                if stops.contains(keyword) { return (body, keyword) }
                body.append(try parseStatement(keyword, begin: begin))
            default:
                throw fail("unexpected \(describe(current.kind))")
            }
        }
    }

    mutating func parseTemplate() throws(ChatTemplateError) -> [Statement] {
        let (body, stop) = try parseBody(until: [])
        if let stop { throw fail("unexpected \"\(stop)\"") }
        return body
    }

    private mutating func parseStatement(_ keyword: String, begin: Int) throws(ChatTemplateError) -> Statement {
        try nest()
        defer { depth -= 1 }
        let keywordOffset = current.offset
        _ = advance()
        switch keyword {
        case "if":
            var branches: [(Expression, [Statement])] = []
            var condition = try parseTuple()
            var otherwise: [Statement] = []
            while true {
                try expectBlockEnd()
                let (body, stop) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard let stop else { throw fail("the if block is never closed with endif", at: begin) }
                _ = advance()
                if stop == "elif" {
                    condition = try parseTuple()
                    continue
                }
                if stop == "else" {
                    try expectBlockEnd()
                    let (elseBody, end) = try parseBody(until: ["endif"])
                    guard end != nil else { throw fail("the if block is never closed with endif", at: begin) }
                    otherwise = elseBody
                    _ = advance()
                }
                try expectBlockEnd()
                return .conditional(branches: branches, otherwise: otherwise)
            }
        case "for":
            let target = try parseAssignmentTarget(allowAttribute: false)
            guard isName("in") else { throw fail("expected \"in\" in the for loop, found \(describe(current.kind))") }
            _ = advance()
            let iterable = try parseTuple(conditional: false)
            var filter: Expression? = nil
            if isName("if") {
                _ = advance()
                filter = try parseExpression()
            }
            if isName("recursive") { throw ChatTemplateError.unsupported("recursive for loops", lexer.position(of: current.offset)) }
            try expectBlockEnd()
            loopDepth += 1
            let (body, stop) = try parseBody(until: ["else", "endfor"])
            loopDepth -= 1
            guard let stop else { throw fail("the for loop is never closed with endfor", at: begin) }
            _ = advance()
            var otherwise: [Statement] = []
            if stop == "else" {
                try expectBlockEnd()
                let (elseBody, end) = try parseBody(until: ["endfor"])
                guard end != nil else { throw fail("the for loop is never closed with endfor", at: begin) }
                otherwise = elseBody
                _ = advance()
            }
            try expectBlockEnd()
            return .loop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, offset: begin)
        case "set":
            let target = try parseAssignmentTarget(allowAttribute: true)
            if isSymbol("=") {
                _ = advance()
                let value = try parseTuple()
                try expectBlockEnd()
                return .assign(target, value, offset: keywordOffset)
            }
            if isSymbol("|") { throw ChatTemplateError.unsupported("filters on a set block", lexer.position(of: current.offset)) }
            try expectBlockEnd()
            let (body, stop) = try parseBody(until: ["endset"])
            guard stop != nil else { throw fail("the set block is never closed with endset", at: begin) }
            _ = advance()
            try expectBlockEnd()
            return .assignBlock(target, body: body, offset: keywordOffset)
        case "break", "continue":
            guard loopDepth > 0 else { throw fail("\(keyword) outside a for loop", at: keywordOffset) }
            try expectBlockEnd()
            return keyword == "break" ? .breakLoop(offset: keywordOffset) : .continueLoop(offset: keywordOffset)
        case "elif", "else", "endif", "endfor", "endset":
            throw fail("\"\(keyword)\" without its opening block", at: keywordOffset)
        default:
            throw ChatTemplateError.unsupported("the \"\(keyword)\" tag", lexer.position(of: keywordOffset))
        }
    }

    private mutating func parseAssignmentTarget(allowAttribute: Bool) throws(ChatTemplateError) -> AssignmentTarget {
        let first = try expectName()
        if allowAttribute, isSymbol(".") {
            _ = advance()
            return .attribute(namespace: first, attribute: try expectName())
        }
        var names = [first]
        var isTuple = false
        while isSymbol(",") {
            isTuple = true
            _ = advance()
            guard case .name = current.kind else { break }
            names.append(try expectName())
        }
        return isTuple ? .names(names) : .name(first)
    }

    // MARK: Expressions

    /// An expression, or several separated by commas as a tuple (jinja2's `parse_tuple`).
    mutating func parseTuple(conditional: Bool = true) throws(ChatTemplateError) -> Expression {
        let offset = current.offset
        let first = conditional ? try parseExpression() : try parseOr()
        guard isSymbol(",") else { return first }
        var items = [first]
        while isSymbol(",") {
            _ = advance()
            if current.kind == .variableEnd || current.kind == .blockEnd || isSymbol(")") { break }
            items.append(conditional ? try parseExpression() : try parseOr())
        }
        return Expression(kind: .tuple(items), offset: offset)
    }

    mutating func parseExpression() throws(ChatTemplateError) -> Expression {
        try nest()
        defer { depth -= 1 }
        let offset = current.offset
        var expression = try parseOr()
        var links = 0
        while isName("if") {
            try link(&links)
            _ = advance()
            let condition = try parseOr()
            var otherwise: Expression? = nil
            if isName("else") {
                _ = advance()
                otherwise = try parseExpression()
            }
            expression = Expression(kind: .conditional(condition: condition, then: expression, otherwise: otherwise), offset: offset)
        }
        return expression
    }

    private mutating func parseOr() throws(ChatTemplateError) -> Expression {
        var left = try parseAnd()
        var links = 0
        while isName("or") {
            try link(&links)
            let offset = advance().offset
            left = Expression(kind: .or(left, try parseAnd()), offset: offset)
        }
        return left
    }

    private mutating func parseAnd() throws(ChatTemplateError) -> Expression {
        var left = try parseNot()
        var links = 0
        while isName("and") {
            try link(&links)
            let offset = advance().offset
            left = Expression(kind: .and(left, try parseNot()), offset: offset)
        }
        return left
    }

    private mutating func parseNot() throws(ChatTemplateError) -> Expression {
        if isName("not") {
            let offset = advance().offset
            try nest()
            defer { depth -= 1 }
            return Expression(kind: .not(try parseNot()), offset: offset)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(ChatTemplateError) -> Expression {
        let offset = current.offset
        let left = try parseAdditive()
        var operations: [(String, Expression)] = []
        while true {
            if case .symbol(let symbol) = current.kind, ["==", "!=", "<", "<=", ">", ">="].contains(symbol) {
                _ = advance()
                operations.append((symbol, try parseAdditive()))
            } else if isName("in") {
                _ = advance()
                operations.append(("in", try parseAdditive()))
            } else if isName("not"), peek().kind == .name("in") {
                _ = advance()
                _ = advance()
                operations.append(("not in", try parseAdditive()))
            } else {
                break
            }
        }
        return operations.isEmpty ? left : Expression(kind: .compare(left, operations), offset: offset)
    }

    private mutating func parseAdditive() throws(ChatTemplateError) -> Expression {
        var left = try parseConcatenation()
        var links = 0
        while case .symbol(let symbol) = current.kind, symbol == "+" || symbol == "-" {
            try link(&links)
            let offset = advance().offset
            left = Expression(kind: .binary(symbol, left, try parseConcatenation()), offset: offset)
        }
        return left
    }

    private mutating func parseConcatenation() throws(ChatTemplateError) -> Expression {
        var left = try parseMultiplicative()
        var links = 0
        while isSymbol("~") {
            try link(&links)
            let offset = advance().offset
            left = Expression(kind: .binary("~", left, try parseMultiplicative()), offset: offset)
        }
        return left
    }

    private mutating func parseMultiplicative() throws(ChatTemplateError) -> Expression {
        var left = try parsePower()
        var links = 0
        while case .symbol(let symbol) = current.kind, ["*", "/", "//", "%"].contains(symbol) {
            try link(&links)
            let offset = advance().offset
            left = Expression(kind: .binary(symbol, left, try parsePower()), offset: offset)
        }
        return left
    }

    private mutating func parsePower() throws(ChatTemplateError) -> Expression {
        var left = try parseUnary()
        var links = 0
        while isSymbol("**") {
            try link(&links)
            let offset = advance().offset
            left = Expression(kind: .binary("**", left, try parseUnary()), offset: offset)
        }
        return left
    }

    private mutating func parseUnary(withFilters: Bool = true) throws(ChatTemplateError) -> Expression {
        try nest()
        defer { depth -= 1 }
        var expression: Expression
        if isSymbol("-") || isSymbol("+") {
            let token = advance()
            let operand = try parseUnary(withFilters: false)
            expression = Expression(kind: token.kind == .symbol("-") ? .negate(operand) : .plus(operand), offset: token.offset)
        } else {
            expression = try parsePrimary()
        }
        expression = try parsePostfix(expression)
        if withFilters { expression = try parseFiltersAndTests(expression) }
        return expression
    }

    private mutating func parsePrimary() throws(ChatTemplateError) -> Expression {
        let token = current
        switch token.kind {
        case .name(let name):
            _ = advance()
            switch name {
            case "true", "True": return Expression(kind: .constant(.bool(true)), offset: token.offset)
            case "false", "False": return Expression(kind: .constant(.bool(false)), offset: token.offset)
            case "none", "None": return Expression(kind: .constant(.none), offset: token.offset)
            default: return Expression(kind: .name(name), offset: token.offset)
            }
        case .string(let text):
            _ = advance()
            return Expression(kind: .constant(.string(text)), offset: token.offset)
        case .integer(let value):
            _ = advance()
            return Expression(kind: .constant(.int(value)), offset: token.offset)
        case .float(let value):
            _ = advance()
            return Expression(kind: .constant(.double(value)), offset: token.offset)
        case .symbol("("):
            _ = advance()
            if isSymbol(")") {
                _ = advance()
                return Expression(kind: .tuple([]), offset: token.offset)
            }
            let inner = try parseTuple()
            try expectSymbol(")")
            return inner
        case .symbol("["):
            _ = advance()
            var items: [Expression] = []
            while !isSymbol("]") {
                items.append(try parseExpression())
                guard isSymbol(",") else { break }
                _ = advance()
            }
            try expectSymbol("]")
            return Expression(kind: .list(items), offset: token.offset)
        case .symbol("{"):
            _ = advance()
            var pairs: [(Expression, Expression)] = []
            while !isSymbol("}") {
                let key = try parseExpression()
                try expectSymbol(":")
                pairs.append((key, try parseExpression()))
                guard isSymbol(",") else { break }
                _ = advance()
            }
            try expectSymbol("}")
            return Expression(kind: .dictionary(pairs), offset: token.offset)
        default:
            throw fail("expected an expression, found \(describe(token.kind))")
        }
    }

    private mutating func parsePostfix(_ base: Expression) throws(ChatTemplateError) -> Expression {
        var expression = base
        var links = 0
        while true {
            try link(&links)
            if isSymbol(".") {
                let offset = advance().offset
                switch current.kind {
                case .name(let name):
                    _ = advance()
                    expression = Expression(kind: .attribute(expression, name), offset: offset)
                case .integer(let value):
                    _ = advance()
                    expression = Expression(kind: .item(expression, Expression(kind: .constant(.int(value)), offset: offset)), offset: offset)
                default:
                    throw fail("expected an attribute name after \".\", found \(describe(current.kind))")
                }
            } else if isSymbol("[") {
                let offset = advance().offset
                expression = try parseSubscript(expression, offset: offset)
            } else if isSymbol("(") {
                let offset = current.offset
                expression = Expression(kind: .call(expression, try parseCallArguments()), offset: offset)
            } else {
                return expression
            }
        }
    }

    private mutating func parseSubscript(_ base: Expression, offset: Int) throws(ChatTemplateError) -> Expression {
        var parts: [Expression?] = []
        var current: Expression? = nil
        var isSlice = false
        while !isSymbol("]") {
            if isSymbol(":") {
                isSlice = true
                _ = advance()
                parts.append(current)
                current = nil
            } else {
                guard current == nil else { throw fail("expected \"]\", found \(describe(self.current.kind))") }
                current = try parseExpression()
            }
        }
        try expectSymbol("]")
        parts.append(current)
        if !isSlice {
            guard let key = parts[0] else { throw fail("an empty subscript", at: offset) }
            return Expression(kind: .item(base, key), offset: offset)
        }
        guard parts.count <= 3 else { throw fail("a slice takes at most start:stop:step", at: offset) }
        while parts.count < 3 { parts.append(nil) }
        return Expression(kind: .slice(base, start: parts[0], stop: parts[1], step: parts[2]), offset: offset)
    }

    private mutating func parseCallArguments() throws(ChatTemplateError) -> Arguments {
        try expectSymbol("(")
        var arguments = Arguments()
        while !isSymbol(")") {
            if case .name(let name) = current.kind, peek().kind == .symbol("=") {
                _ = advance()
                _ = advance()
                arguments.named.append((name, try parseExpression()))
            } else {
                if isSymbol("*") || isSymbol("**") { throw ChatTemplateError.unsupported("* and ** arguments", lexer.position(of: current.offset)) }
                guard arguments.named.isEmpty else { throw fail("a positional argument after a keyword argument") }
                arguments.positional.append(try parseExpression())
            }
            guard isSymbol(",") else { break }
            _ = advance()
        }
        try expectSymbol(")")
        return arguments
    }

    private mutating func parseFiltersAndTests(_ base: Expression) throws(ChatTemplateError) -> Expression {
        var expression = base
        var links = 0
        while true {
            try link(&links)
            if isSymbol("|") {
                let offset = advance().offset
                var name = try expectName()
                while isSymbol(".") {
                    _ = advance()
                    name += "." + (try expectName())
                }
                let arguments = isSymbol("(") ? try parseCallArguments() : Arguments()
                expression = Expression(kind: .filter(expression, name: name, arguments), offset: offset)
            } else if isName("is") {
                let offset = advance().offset
                var negated = false
                if isName("not") {
                    _ = advance()
                    negated = true
                }
                let name = try expectName()
                var arguments = Arguments()
                if isSymbol("(") {
                    arguments = try parseCallArguments()
                } else {
                    switch current.kind {
                    case .name("else"), .name("or"), .name("and"): break
                    case .name("is"): throw fail("tests cannot be chained with is")
                    case .name, .string, .integer, .float, .symbol("["), .symbol("{"):
                        arguments.positional = [try parsePostfix(try parsePrimary())]
                    default: break
                    }
                }
                let test = Expression(kind: .test(expression, name: name, arguments), offset: offset)
                expression = negated ? Expression(kind: .not(test), offset: offset) : test
            } else if isSymbol("(") {
                let offset = current.offset
                expression = Expression(kind: .call(expression, try parseCallArguments()), offset: offset)
            } else {
                return expression
            }
        }
    }
}
