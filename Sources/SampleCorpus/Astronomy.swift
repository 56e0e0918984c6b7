/// Astronomy observing notes: a log header with site and conditions, then timed entries per object
/// with instrument, magnification and what was seen.
enum Astronomy {
    static let objects = ["the Orion Nebula", "the Andromeda Galaxy", "the Double Cluster", "the Pleiades", "the Ring Nebula", "the globular cluster M13", "the Whirlpool Galaxy", "Albireo", "the Crab Nebula", "the Beehive Cluster", "Jupiter", "Saturn", "Mars", "the Moon's terminator", "the Owl Nebula", "Mizar and Alcor", "the Dumbbell Nebula", "Omega Centauri"]
    static let constellations = ["Orion", "Andromeda", "Perseus", "Taurus", "Lyra", "Hercules", "Canes Venatici", "Cygnus", "Cancer", "Ursa Major", "Vulpecula", "Sagittarius", "Cassiopeia", "Gemini"]
    static let instruments = ["8-inch Dobsonian", "80mm refractor", "10x50 binoculars", "6-inch Newtonian", "Maksutov-Cassegrain", "12-inch reflector", "102mm apochromat"]
    static let eyepieces = ["25mm eyepiece", "10mm eyepiece", "Barlow lens", "wide-field eyepiece", "OIII filter", "UHC filter"]
    static let sightings = [
        "The core was bright and mottled, and averted vision showed faint spiral structure",
        "Four Galilean moons were lined up east of the planet, with the Great Red Spot near the meridian",
        "The rings were tilted nicely and the Cassini division was visible in moments of steady seeing",
        "A faint grey smudge, elongated, with a brighter nucleus that came and went",
        "Resolved into dozens of pinpoint stars right across the core",
        "A lovely colour contrast: a golden primary and a blue companion",
        "The dark lane along the disc was just detectable with averted vision",
        "Nebulosity filled the field, with the Trapezium stars sharply split",
        "Craters along the terminator threw long shadows across the lunar surface",
        "Only a hint of the halo; the sky glow to the south washed out the outer arms",
    ]
    static let conditions = ["transparency excellent", "transparency fair, some high cloud", "thin cirrus moving through", "dew forming on the finder", "a first-quarter Moon low in the west", "light pollution from the town to the south", "steady air after midnight"]
    static let sites = ["the back garden", "the dark-sky site on the moor", "the club observatory", "the hilltop car park", "the field behind the farm"]
    static let vocabulary = [objects, constellations, instruments, eyepieces, sightings, conditions, sites,
                             ["observing", "log", "seeing", "transparency", "telescope", "magnification", "nebula", "galaxy", "cluster", "stars", "star", "planet", "averted", "vision", "eyepiece", "magnitude", "sketch", "sketched", "finder", "dew", "collimation", "orbit", "meridian", "limiting", "zenith", "session", "UT", "twilight"]]
}

extension DocumentWriter {
    mutating func observingLog() -> String {
        var lines: [String] = []
        let month = pick(Self.months)
        lines.append(pick([
            "Observing log, \(number(1...28)) \(month), from \(pick(Astronomy.sites)).",
            "Session notes for the night of \(number(1...28)) \(month). Site: \(pick(Astronomy.sites)).",
        ]))
        lines.append("Seeing \(number(1...5))/5, limiting magnitude about \(number(40...65) / 10).\(number(0...9)), \(pick(Astronomy.conditions)).")
        lines.append("Instrument: \(pick(Astronomy.instruments)) with a \(pick(Astronomy.eyepieces)).")
        lines.append("")
        var hour = number(19...23), minute = number(0...5) * 10
        for object in pick(number(2...4), of: Astronomy.objects) {
            let time = String(hour % 24).leftPadded + ":" + String(minute).leftPadded
            let where_ = chance(0.6) ? " in \(pick(Astronomy.constellations))" : ""
            let entry = pick([
                "\(time) UT. \(capitalized(object))\(where_) at \(number(2...25) * 10)x. \(pick(Astronomy.sightings)).",
                "\(time) UT: \(object)\(where_). \(pick(Astronomy.sightings)). Sketched at the eyepiece.",
                "\(time) UT. Found \(object)\(where_) by star-hopping from the finder. \(pick(Astronomy.sightings)).",
            ])
            lines.append(entry)
            minute += number(2...6) * 10
            hour += minute / 60
            minute %= 60
        }
        lines.append(pick([
            "Packed up at \(String(hour % 24).leftPadded):\(String(minute).leftPadded) UT as dew covered the optics.",
            "Clouds rolled in from the west; session ended.",
            "Next time: try the \(pick(Astronomy.eyepieces)) on \(pick(Astronomy.objects)).",
        ]))
        return lines.joined(separator: "\n")
    }

    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
}

extension String {
    /// Two digits: "7" becomes "07".
    var leftPadded: String { count < 2 ? "0" + self : self }
}
