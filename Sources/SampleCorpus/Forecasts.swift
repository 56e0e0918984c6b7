/// Sea-area and weather forecasts: issue time, then per area wind, sea state, weather, visibility;
/// sometimes an inland outlook with temperatures and pressure.
enum Forecasts {
    static let areas = ["Viking", "Forties", "Cromarty", "Dogger", "Fisher", "German Bight", "Humber", "Thames", "Dover", "Wight", "Portland", "Plymouth", "Biscay", "Fastnet", "Lundy", "Irish Sea", "Shannon", "Rockall", "Malin", "Hebrides", "Fair Isle", "Southeast Iceland"]
    static let directions = ["north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest", "northerly", "southerly", "westerly", "easterly", "cyclonic", "variable"]
    static let changes = ["veering", "backing", "increasing", "decreasing", "becoming variable", "occasionally"]
    static let seas = ["smooth", "slight", "moderate", "rough", "very rough", "high", "moderate or rough", "slight or moderate"]
    static let weather = ["fair", "rain", "showers", "squally showers", "drizzle", "thundery showers", "fog patches", "rain later", "sleet", "wintry showers", "mainly fair"]
    static let visibility = ["good", "moderate", "poor", "very poor", "good, occasionally poor", "moderate or good", "moderate, occasionally very poor"]
    static let regions = ["the northern isles", "western coasts", "the southeast", "upland areas", "the Midlands", "eastern counties", "the far north", "coastal districts"]
    static let skies = ["cloudy", "overcast", "bright spells", "clear skies", "low cloud", "sunny intervals", "patchy mist"]
    static let pressure = ["falling slowly", "falling more quickly", "rising slowly", "rising more quickly", "steady", "now falling"]
    static let vocabulary = [areas, directions, changes, seas, weather, visibility, regions, skies, pressure,
                             ["forecast", "issued", "gale", "gales", "severe", "storm", "wind", "winds", "sea", "state", "visibility", "outlook", "overnight", "pressure", "millibars", "degrees", "frost", "temperatures", "breezy", "warnings", "shipping", "met", "office", "gusts", "knots", "highs", "lows"]]
}

extension DocumentWriter {
    mutating func wind() -> String {
        let first = number(2...8)
        var text = "\(capitalized(pick(Forecasts.directions))) \(first) to \(min(first + number(1...2), 11))"
        if chance(0.5) { text += ", \(pick(Forecasts.changes)) \(pick(Forecasts.directions)) \(number(3...9)) later" }
        return text
    }

    mutating func forecast() -> String {
        var lines: [String] = []
        let hour = pick(["0005", "0520", "1201", "1754"])
        lines.append(pick([
            "The shipping forecast issued by the Met Office at \(hour) on \(pick(Self.weekdays)).",
            "Sea area forecast for the next 24 hours, issued at \(hour) UTC.",
        ]))
        if chance(0.4) {
            let areas = pick(number(1...3), of: Forecasts.areas)
            lines.append("There are warnings of gales in \(list(areas)).")
        }
        lines.append(pick([
            "General synopsis: low \(pick(Forecasts.areas)) \(number(960...1010)) millibars, \(pick(Forecasts.pressure)), expected \(pick(Forecasts.areas)) \(number(960...1010)) by midnight.",
            "General situation: high pressure \(number(1015...1040)) millibars, slow moving, \(pick(Forecasts.pressure)).",
        ]))
        lines.append("")
        for area in pick(number(2...4), of: Forecasts.areas) {
            let shape = number(0...1)
            if shape == 0 {
                lines.append("\(area). Wind: \(wind()). Sea state: \(pick(Forecasts.seas)). Weather: \(pick(Forecasts.weather)). Visibility: \(pick(Forecasts.visibility)).")
            } else {
                lines.append("\(area): \(wind()). \(capitalized(pick(Forecasts.seas))). \(capitalized(pick(Forecasts.weather))). \(capitalized(pick(Forecasts.visibility))).")
            }
        }
        if chance(0.5) {
            let low = number(-3...9)
            lines.append("")
            lines.append("Inland outlook for \(pick(Forecasts.regions)): \(pick(Forecasts.skies)) with \(pick(Forecasts.weather)), highs near \(low + number(4...12)) degrees and lows around \(low) degrees overnight.")
            lines.append(pick([
                "Pressure \(pick(Forecasts.pressure)); gusts of \(number(30...70)) knots possible on exposed coasts.",
                "A touch of frost in sheltered spots; breezy at first, winds easing later.",
                "Rain clearing eastwards by dawn, leaving \(pick(Forecasts.skies)) and scattered showers.",
            ]))
        }
        return lines.joined(separator: "\n")
    }

    static let weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
}
