"""Word tables for the English text normalizer: abbreviations, units, months, currencies, symbols."""

from __future__ import annotations

MONTHS = ("January February March April May June July August September October November December").split()
MONTH_ABBREVIATIONS = {m[:3].lower(): m for m in MONTHS} | {"sept": "September"}
WEEKDAYS = {"mon": "Monday", "tue": "Tuesday", "tues": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
            "thur": "Thursday", "thurs": "Thursday", "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}

# Abbreviations always written with a final period; the period is not a sentence end.
TITLES = {"mr": "Mister", "mrs": "Missus", "ms": "Miz", "prof": "Professor", "sr": "Senior", "jr": "Junior",
          "gen": "General", "gov": "Governor", "sen": "Senator", "rep": "Representative", "capt": "Captain",
          "lt": "Lieutenant", "col": "Colonel", "sgt": "Sergeant", "rev": "Reverend", "hon": "Honorable"}
# Abbreviations whose period may also end a sentence ("... and so on, etc.").
ABBREVIATIONS = {"etc": "et cetera", "vs": "versus", "approx": "approximately", "dept": "department",
                 "est": "established", "inc": "incorporated", "ltd": "limited", "corp": "corporation",
                 "co": "company", "ave": "avenue", "blvd": "boulevard", "rd": "road", "ln": "lane",
                 "mt": "mount", "ft": "fort", "univ": "university", "assn": "association",
                 "fig": "figure", "vol": "volume", "ch": "chapter", "p": "page",
                 "pp": "pages", "no": "number", "nos": "numbers", "tel": "telephone", "misc": "miscellaneous"}
# Dotted Latin abbreviations, matched case-insensitively with their dots.
DOTTED = {"e.g.": "for example", "i.e.": "that is", "a.m.": "AM", "p.m.": "PM", "a.k.a.": "also known as",
          "r.s.v.p.": "RSVP", "u.s.": "US", "u.k.": "UK", "u.s.a.": "USA", "d.c.": "DC", "ph.d.": "PHD",
          "b.c.": "BC", "a.d.": "ay dee"}
# Letter names, so that a spelled letter is never read as a word ("A" -> the article).
LETTERS = dict(zip("abcdefghijklmnopqrstuvwxyz", ("ay bee see dee ee ef gee aitch eye jay kay el em en oh pee cue ar "
                                                  "ess tee you vee double-you ex why zee").split(), strict=True))

# unit symbol -> (singular, plural); only read as a unit right after a number.
UNITS = {
    "mm": ("millimeter", "millimeters"), "cm": ("centimeter", "centimeters"), "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"), "in": ("inch", "inches"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "mi": ("mile", "miles"), "mg": ("milligram", "milligrams"), "g": ("gram", "grams"),
    "kg": ("kilogram", "kilograms"), "t": ("ton", "tons"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"), "ml": ("milliliter", "milliliters"), "l": ("liter", "liters"),
    "gal": ("gallon", "gallons"), "ms": ("millisecond", "milliseconds"), "s": ("second", "seconds"),
    "sec": ("second", "seconds"), "min": ("minute", "minutes"), "h": ("hour", "hours"), "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"), "hz": ("hertz", "hertz"), "khz": ("kilohertz", "kilohertz"),
    "mhz": ("megahertz", "megahertz"), "ghz": ("gigahertz", "gigahertz"), "kb": ("kilobyte", "kilobytes"),
    "mb": ("megabyte", "megabytes"), "gb": ("gigabyte", "gigabytes"), "tb": ("terabyte", "terabytes"),
    "kbps": ("kilobit per second", "kilobits per second"), "mbps": ("megabit per second", "megabits per second"),
    "w": ("watt", "watts"), "kw": ("kilowatt", "kilowatts"), "kwh": ("kilowatt hour", "kilowatt hours"),
    "v": ("volt", "volts"), "mph": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "m/s": ("meter per second", "meters per second"), "db": ("decibel", "decibels"),
    "°c": ("degree Celsius", "degrees Celsius"), "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"), "%": ("percent", "percent"), "x": ("times", "times"),
}
# Unit symbols written in a case that matters (ambiguous lower-case forms are words: "in", "s", "t", "m").
CASE_SENSITIVE_UNITS = {"in", "s", "t", "m", "h", "g", "l", "v", "w", "x", "min", "sec"}

# symbol -> (unit singular, plural, subunit singular, plural)
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
              "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen"),
              "₹": ("rupee", "rupees", "paisa", "paise")}
SCALE_WORDS = {"k": "thousand", "thousand": "thousand", "m": "million", "mn": "million", "million": "million",
               "b": "billion", "bn": "billion", "billion": "billion", "t": "trillion", "trillion": "trillion"}

SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "×": " times ", "÷": " divided by ",
           "<": " less than ", ">": " greater than ", "≤": " less than or equal to ",
           "≥": " greater than or equal to ", "±": " plus or minus ", "°": " degrees ", "%": " percent ",
           "#": " number ", "~": " about ", "^": " ", "*": " ", "_": " ", "|": ", ", "\\": " ", "/": " slash ",
           "§": " section ", "©": " copyright ", "®": " ", "™": " ", "•": ", ", "·": " ", "¶": " "}
FRACTIONS = {"½": "one half", "⅓": "one third", "⅔": "two thirds", "¼": "one quarter", "¾": "three quarters",
             "⅕": "one fifth", "⅛": "one eighth"}
