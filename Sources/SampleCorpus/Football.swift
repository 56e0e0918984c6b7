/// Football match reports: a score line, the goals minute by minute, cards, and a manager's quote.
enum Football {
    static let clubs = ["Riverside Rovers", "Northgate United", "Harbour Town", "Castleford Athletic", "Millbrook City", "Ashworth Wanderers", "Kingsbridge Albion", "Eastfield Rangers", "Port Vale Park", "Westmoor Celtic"]
    static let players = ["Okafor", "Lindqvist", "Moreno", "Hughes", "Bellamy", "Santos", "Kowalski", "Fraser", "Adeyemi", "Carrick", "Duarte", "Whitfield", "Nakamura", "O'Neill"]
    static let finishes = ["curling a low shot into the bottom corner", "heading in from a corner", "tapping in at the far post", "firing home from the edge of the box", "converting a penalty", "lifting the ball over the goalkeeper", "volleying in a loose clearance", "sliding in to finish a cross"]
    static let chances = ["struck the crossbar", "forced a fine save from the goalkeeper", "fired just wide", "had a goal ruled out for offside", "saw a penalty appeal waved away", "blazed over from six yards"]
    static let stadiums = ["the Riverside Ground", "Northgate Park", "the Harbour Stadium", "Castle Lane", "the Millbrook Arena", "Ashworth Road"]
    static let quotes = ["We showed real character in the second half", "The lads deserved the three points", "We have to be more clinical in front of goal", "The referee had a difficult afternoon", "It was a proper derby atmosphere", "Defensively we were not good enough today"]
    static let vocabulary = [clubs, players, finishes, chances, stadiums, quotes,
                             ["goal", "goals", "scored", "scoring", "minute", "half-time", "full-time", "referee", "yellow", "red", "card", "cards", "striker", "midfielder", "defender", "goalkeeper", "manager", "visitors", "hosts", "equaliser", "equalised", "winner", "league", "supporters", "crowd", "substitute", "penalty", "kick-off", "points", "season", "table", "derby"]]
}

extension DocumentWriter {
    mutating func matchReport() -> String {
        let teams = pick(2, of: Football.clubs)
        let (home, away) = (teams[0], teams[1])
        var homeGoals = 0, awayGoals = 0
        var events: [String] = []
        var minute = number(3...20)
        for _ in 0..<number(1...4) {
            let homeScores = chance(0.55)
            if homeScores { homeGoals += 1 } else { awayGoals += 1 }
            let player = pick(Football.players), finish = pick(Football.finishes)
            let side = homeScores ? home : away
            events.append(pick([
                "\(player) scored for \(side) in the \(minute)th minute, \(finish).",
                "In the \(minute)th minute \(player) made it \(homeGoals)-\(awayGoals), \(finish).",
                "\(side) struck after \(minute) minutes when \(player) finished \(pick(["well", "calmly", "superbly"])), \(finish).",
            ]))
            if chance(0.4) { events.append("\(pick(Football.players)) \(pick(Football.chances)) soon after.") }
            minute += number(8...25)
            if minute > 90 { break }
        }
        let result = homeGoals > awayGoals ? "beat" : homeGoals < awayGoals ? "lost to" : "drew with"
        var lines = ["\(home) \(homeGoals)-\(awayGoals) \(away)"]
        lines.append(pick([
            "\(home) \(result) \(away) \(homeGoals)-\(awayGoals) at \(pick(Football.stadiums)) on \(pick(Self.weekdays)) in front of \(number(30...420) * 100) supporters.",
            "A crowd of \(number(30...420) * 100) at \(pick(Football.stadiums)) saw \(home) and \(away) meet in the league on \(pick(Self.weekdays)) afternoon.",
        ]))
        lines.append("")
        lines += events
        lines.append(pick([
            "The referee showed \(number(1...6)) yellow cards, and \(pick(Football.players)) was sent off late on for a second booking.",
            "The referee booked \(number(1...5)) players in a scrappy second half.",
            "\(pick(Football.players)) came on as a substitute just after half-time and changed the game.",
        ]))
        lines.append("Manager \(pick(["Steve", "Ana", "Marco", "Claire", "Dave", "Ruth"])) \(pick(Football.players)) said afterwards: \"\(pick(Football.quotes)).\"")
        if chance(0.5) {
            lines.append("The result leaves \(home) \(pick(["third", "seventh", "tenth", "bottom", "top"])) in the table with \(number(4...40)) points.")
        }
        return lines.joined(separator: "\n")
    }
}
