/// Cooking recipes: a title, servings and timings, an ingredient list, numbered method steps, a tip.
enum Recipes {
    static let mains = ["chicken thighs", "salmon fillets", "lamb shoulder", "mushrooms", "aubergines", "chickpeas", "pork chops", "cauliflower", "lentils", "prawns", "beef shin", "butternut squash"]
    static let flavours = ["lemon and thyme", "garlic and rosemary", "ginger and spring onion", "smoked paprika", "miso and honey", "chilli and lime", "sage butter", "tomato and basil", "cumin and coriander", "mustard and tarragon"]
    static let styles = ["Slow-roasted", "Pan-fried", "Braised", "Grilled", "Crispy baked", "Simple", "Spiced", "Creamy", "One-pot", "Sticky glazed"]
    static let pantry = ["olive oil", "unsalted butter", "plain flour", "caster sugar", "double cream", "chicken stock", "vegetable stock", "white wine", "garlic cloves", "shallots", "onions", "carrots", "celery sticks", "eggs", "parmesan", "breadcrumbs", "soy sauce", "honey", "tinned tomatoes", "fresh parsley", "basmati rice", "potatoes"]
    static let units = ["tablespoons", "teaspoons", "grams", "millilitres", "cups", "pinches", "handfuls"]
    static let cuts = ["finely chopped", "thinly sliced", "crushed", "diced", "grated", "roughly torn", "peeled and halved"]
    static let heat = ["over a medium heat", "over a low heat", "on a high heat", "gently", "in a hot pan"]
    static let textures = ["golden and crisp", "soft and translucent", "tender", "thick and glossy", "caramelised", "bubbling", "fragrant"]
    static let serving = ["with crusty bread", "over steamed rice", "with a green salad", "with buttered noodles", "straight from the pan", "with a spoonful of yoghurt"]
    static let cookware = ["frying pan", "casserole dish", "roasting tin", "saucepan", "wok", "baking tray", "mixing bowl"]
    static let vocabulary = [mains, flavours, styles, pantry, units, cuts, textures, serving, cookware,
                             ["preheat", "oven", "simmer", "season", "whisk", "stir", "stirring", "drizzle", "serves", "ingredients", "method", "salt", "pepper", "minutes", "tip", "preparation", "cooking", "fry", "sauce", "leftovers", "fridge", "garnish"]]
}

extension DocumentWriter {
    mutating func recipe() -> String {
        let main = pick(Recipes.mains), flavour = pick(Recipes.flavours)
        var lines = ["\(pick(Recipes.styles)) \(main) with \(flavour)"]
        lines.append(pick([
            "Serves \(number(2...6)). Preparation \(number(1...6) * 5) minutes, cooking \(number(2...12) * 5) minutes.",
            "A weeknight dish for \(number(2...6)) people, ready in about \(number(3...10) * 10) minutes.",
            "Makes enough for \(number(2...8)) and keeps in the fridge for \(number(2...4)) days.",
        ]))
        lines.append("")
        lines.append("Ingredients:")
        lines.append("- \(number(2...8) * 100) grams \(main)")
        for item in pick(number(3...6), of: Recipes.pantry) {
            let amount = pick(["\(number(1...4)) \(pick(Recipes.units))", "\(number(1...3))", "a pinch of", "a small bunch of"])
            lines.append("- \(amount) \(item)" + (chance(0.4) ? ", \(pick(Recipes.cuts))" : ""))
        }
        lines.append("")
        lines.append("Method:")
        var steps: [String] = []
        if chance(0.5) { steps.append("Preheat the oven to \(number(16...22) * 10) degrees.") }
        let pan = pick(Recipes.cookware)
        steps.append(pick([
            "Heat the \(pick(Recipes.pantry.prefix(2).map { $0 })) in a \(pan) \(pick(Recipes.heat)).",
            "Warm a large \(pan) \(pick(Recipes.heat)) and add a splash of olive oil.",
        ]))
        for _ in 0..<number(2...4) {
            let ingredient = pick(Recipes.pantry)
            steps.append(pick([
                "Add the \(ingredient) and cook for \(number(2...12)) minutes until \(pick(Recipes.textures)).",
                "Stir in the \(ingredient), then simmer \(pick(Recipes.heat)) for \(number(5...25)) minutes.",
                "Whisk the \(ingredient) with a pinch of salt until smooth.",
                "Season the \(main) well with salt and pepper and fry until \(pick(Recipes.textures)).",
                "Pour in the \(ingredient) and let it bubble until the sauce is \(pick(Recipes.textures)).",
                "Scatter over the \(flavour) and toss everything together.",
            ]))
        }
        steps.append(pick([
            "Rest for \(number(2...10)) minutes, then serve \(pick(Recipes.serving)).",
            "Taste, adjust the seasoning and serve \(pick(Recipes.serving)).",
            "Garnish with fresh parsley and serve \(pick(Recipes.serving)).",
        ]))
        lines += steps.enumerated().map { "\($0.offset + 1). \($0.element)" }
        if chance(0.6) {
            lines.append("")
            lines.append(pick([
                "Tip: the \(main) can be swapped for \(pick(Recipes.mains)) without changing the timings.",
                "Tip: leftovers reheat well in a \(pick(Recipes.cookware)) with a splash of stock.",
                "Tip: make the sauce a day ahead; the \(flavour) flavour deepens overnight.",
            ]))
        }
        return lines.joined(separator: "\n")
    }
}
