"""A small labelled set for `POST /rerank`: queries whose candidates answer one of a few aspects.

Not a benchmark (the leading underscore keeps `make bench` off it): benchmark scripts in bench/
`import _rerank_dataset` and call `make_dataset`, then score what each method chose with
`aspect_recall`. Plain Python, no downloads, deterministic for a seed.

How a query is made. Twelve topics are written by hand below (a password reset, a laptop's
battery life, ...). Each has a query, 6 *aspects* (distinct sub-answers to the query, e.g. for a
password reset: where the setting is, the email link and its expiry, the password rules, ...)
and one base sentence per aspect, two clauses written in mid-sentence form. For one query:

- Each aspect becomes a group of near-duplicates: the base sentence, then variants of it by light
  rewording: up to two swaps from the topic's and a general synonym table that leave the query's
  words alone, and in every other variant of a sentence with three or more of them, one swap
  that replaces a query word ("password" -> "passcode"), so relevance varies a little within a
  group; the clauses in either order (unless the second points back, "it ..."); a joiner of
  ";", "." or a dash; a prefix such as "Note:" or "In short," or none; a full stop or none.
- The groups are uneven, and on purpose: aspects are ranked by how often their base sentence
  repeats the query's words, and the first gets 5-8 variants, the second 4-7, the others 2-3.
  The most lexically relevant candidates therefore crowd into one or two aspects, while the
  other aspects, which use fewer of the query's words, still answer it with lower relevance.
  This is where plain top-k by relevance fails and a diverse selection should not.
- Off-topic distractors (aspect None) fill the rest up to `candidates`: one to three pieces of
  the topic's boilerplate that answer nothing ("Thank you for contacting us about your
  password."), one or two generic lines of a help page, and reworded sentences of other topics.
- The candidates are shuffled; `aspects[i]` labels `candidates[i]`.

When `queries` exceeds the number of topics the topics repeat (in a new order each round) with
new variants and group sizes. With fewer than 12 candidates the groups cannot keep two members
each; the largest groups are trimmed when the candidates do not hold them all.

Aspect recall at k: of k chosen candidates, the number of distinct aspects they cover
(distractors cover none) divided by min(k, number of aspects), the most k candidates can cover.
1.0 means no chosen candidate repeats an aspect or is off-topic, as long as k <= the number of
aspects; k near-duplicates of one aspect score 1/k.

Run `python bench/_rerank_dataset.py [--seed N] [--queries N] [--candidates N] [--out FILE]`
for a summary per query, and the set as JSON with `--out`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    candidates: list[str]
    aspects: list[int | None]  # per candidate: the aspect it answers, None for a distractor
    topic: str = ""

    @property
    def n_aspects(self) -> int:
        """How many distinct aspects the candidates cover (every aspect of the topic)."""
        return len({aspect for aspect in self.aspects if aspect is not None})


def aspect_recall(chosen: Sequence[int], item: LabelledQuery) -> float:
    """Distinct aspects (not None) among the `chosen` candidate indices, divided by
    min(len(chosen), item.n_aspects); 0.0 when nothing is chosen. Raises `ValueError` for an
    index outside the candidates."""
    if not chosen:
        return 0.0
    for index in chosen:
        if not 0 <= index < len(item.candidates):
            raise ValueError(f"index {index} is not one of {len(item.candidates)} candidates")
    covered = {item.aspects[index] for index in chosen} - {None}
    return len(covered) / min(len(chosen), item.n_aspects)


# --- topics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Topic:
    name: str
    query: str
    # Per aspect, the two clauses of its base sentence in mid-sentence form (lower case first
    # unless a proper noun): "to reset ..." starts a sentence as "To reset ...".
    aspects: tuple[tuple[str, str], ...]
    synonyms: Mapping[str, tuple[str, ...]]  # phrase -> its replacements, for this topic
    boilerplate: tuple[str, ...]  # on the topic, answering nothing


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        name="password reset",
        query="How do I reset my password?",
        aspects=(
            (
                "to reset your password, open Settings and choose Security",
                "the Reset password button is at the top of the Security page",
            ),
            (
                "to reset a password we email you a password reset link",
                "the link expires after 30 minutes, so use it promptly",
            ),
            (
                "when you reset it, a new password needs at least 12 characters",
                "mix upper and lower case letters with a digit or a symbol",
            ),
            (
                "after the reset, two-factor authentication asks for the six-digit code from "
                "your authenticator app",
                "the code changes every 30 seconds, so enter it straight away",
            ),
            (
                "after five wrong password attempts your account locks for 15 minutes",
                "wait for the lock to lift before you sign in again",
            ),
            (
                "if the reset still fails, contact our support team by chat or phone",
                "have your account ID and billing email ready so they can verify you",
            ),
        ),
        synonyms={
            "password": ("passcode", "login"),
            "reset": ("change", "recover"),
            "promptly": ("quickly", "soon"),
            "symbol": ("special character",),
            "wrong": ("incorrect", "failed"),
            "team": ("staff",),
            "straight away": ("right away", "immediately"),
            "lift": ("expire", "end"),
        },
        boilerplate=(
            "Thank you for contacting us about your password.",
            "We are sorry to hear you are having trouble signing in.",
            "Password reset questions are among the most common ones we receive.",
        ),
    ),
    _Topic(
        name="laptop battery life",
        query="How to improve laptop battery life",
        aspects=(
            (
                "to improve laptop battery life, switch on battery saver mode",
                "it limits background activity while the laptop runs on battery",
            ),
            (
                "screen brightness is the biggest drain on laptop battery life",
                "dim the display to about half to improve battery life",
            ),
            (
                "close apps that run in the background, such as sync clients and browsers "
                "with many tabs",
                "Task Manager shows which ones cost the most battery life",
            ),
            (
                "keep the charge between 20 and 80 percent and avoid heat",
                "many laptops offer a charge limit that protects battery health over the years",
            ),
            (
                "a pack that holds under 60 percent of its design capacity is worn out",
                "a battery report or a repair shop can confirm whether a replacement is due",
            ),
            (
                "unplug USB devices and turn off Bluetooth and the keyboard backlight",
                "each of them draws a little power and shortens battery life",
            ),
        ),
        synonyms={
            "laptop": ("notebook",),
            "improve": ("extend", "boost"),
            "switch on": ("turn on", "enable"),
            "biggest": ("largest", "main"),
            "dim": ("lower", "turn down"),
            "display": ("screen",),
            "avoid": ("stay away from",),
            "worn out": ("exhausted", "past its best"),
            "unplug": ("disconnect", "remove"),
        },
        boilerplate=(
            "Thanks for your question about your laptop.",
            "Battery questions come up a lot in our community forum.",
            "Our laptop range is listed on the products page.",
        ),
    ),
    _Topic(
        name="tomato pasta recipe",
        query="easy tomato pasta recipe",
        aspects=(
            (
                "for an easy tomato pasta recipe, simmer crushed tomatoes with garlic and "
                "olive oil",
                "the tomato sauce is ready in 15 minutes while the pasta cooks",
            ),
            (
                "cook the pasta for this easy recipe in plenty of salted water until al dente",
                "save a cup of pasta water to loosen the tomato sauce",
            ),
            (
                "this pasta recipe serves four: 400 g of spaghetti, one 800 g tin of tomatoes and "
                "two cloves",
                "halve every amount when cooking for two people",
            ),
            (
                "finish the pasta with torn basil and grated parmesan",
                "a pinch of chili flakes adds heat if you like it spicy",
            ),
            (
                "for a vegan version skip the cheese and stir in nutritional yeast",
                "roasted vegetables or a spoon of capers work well in the tomato sauce too",
            ),
            (
                "leftover pasta keeps in the fridge for three days in a sealed container",
                "reheat leftovers gently with a splash of water",
            ),
        ),
        synonyms={
            "easy": ("effortless", "uncomplicated"),
            "recipe": ("dish",),
            "simmer": ("slowly cook", "stew"),
            "plenty of": ("lots of", "a big pot of"),
            "save": ("keep", "set aside"),
            "finish": ("top", "serve"),
            "skip": ("leave out", "omit"),
            "sealed": ("closed", "airtight"),
            "gently": ("slowly",),
            "people": ("diners",),
        },
        boilerplate=(
            "Share your own recipe with our cooking community.",
            "Save this recipe to your favourites.",
            "Thank you for rating our pasta dishes.",
        ),
    ),
    _Topic(
        name="renewing a passport",
        query="how to renew my passport",
        aspects=(
            (
                "you can renew your passport online if you were an adult when it was issued",
                "renew the passport on the official government portal",
            ),
            (
                "it costs 75 euros to renew a passport, or 120 euros to renew with fast-track",
                "the new passport usually arrives within three weeks",
            ),
            (
                "when you renew, the passport photo must be recent, in colour and taken "
                "against a plain light background",
                "no glasses, hats or shadows on the face",
            ),
            (
                "send your old passport along with the application form",
                "it is cancelled and returned to you separately",
            ),
            (
                "if you travel within two weeks, book an appointment at a passport office for the "
                "one-day service",
                "bring proof of your trip such as a plane ticket",
            ),
            (
                "children under 16 need a parent to sign before they can renew",
                "their documents are valid for five years instead of ten",
            ),
        ),
        synonyms={
            "renew": ("extend", "replace"),
            "passport": ("travel document",),
            "official": ("national",),
            "arrives": ("comes", "is delivered"),
            "recent": ("new", "up to date"),
            "plain": ("simple", "neutral"),
            "cancelled": ("voided", "invalidated"),
            "book": ("make", "reserve"),
            "proof": ("evidence",),
            "separately": ("in a separate envelope", "on its own"),
        },
        boilerplate=(
            "Thank you for your enquiry about passports.",
            "Our passport helpline is very busy at the moment.",
            "We cannot answer questions about individual applications by email.",
        ),
    ),
    _Topic(
        name="configuring a VPN",
        query="configure a VPN connection on Windows",
        aspects=(
            (
                "to configure a VPN connection on Windows, open Settings and go to Network",
                "click Add a VPN connection and enter the server address",
            ),
            (
                "in the Windows VPN connection form pick the VPN type your provider gives",
                "then enter the username and password to configure the connection",
            ),
            (
                "once the VPN connection is saved, click Connect next to it",
                "check your IP address on a lookup site to confirm the new location",
            ),
            (
                "error 809 on Windows usually means a firewall or router is blocking the ports",
                "allow UDP 500 and 4500 or try a different network",
            ),
            (
                "split tunneling sends only company traffic through the VPN",
                "turn it on in the adapter properties to keep local browsing fast",
            ),
            (
                "many providers ship their own VPN client app which sets everything up "
                "automatically",
                "install it instead if you prefer not to edit settings by hand",
            ),
        ),
        synonyms={
            "configure": ("set up",),
            "connection": ("profile",),
            "click": ("select", "press"),
            "gives": ("supplies", "provides"),
            "confirm": ("verify", "see"),
            "blocking": ("stopping",),
            "sends": ("routes",),
            "ship": ("offer", "provide"),
            "automatically": ("for you",),
            "fast": ("quick", "speedy"),
        },
        boilerplate=(
            "Thank you for contacting IT support about your connection.",
            "Remote access is covered by the IT acceptable use policy.",
            "Windows updates are installed every second Tuesday.",
        ),
    ),
    _Topic(
        name="Python virtual environments",
        query="how to create a Python virtual environment",
        aspects=(
            (
                "create a Python virtual environment with python -m venv .venv in the "
                "project folder",
                "it keeps the project's packages separate",
            ),
            (
                "after you create the Python virtual environment, activate it with source "
                ".venv/bin/activate",
                "on Windows the virtual environment is activated with .venv\\Scripts\\activate",
            ),
            (
                "install packages with pip install inside the activated virtual environment",
                "run pip freeze > requirements.txt to record their versions",
            ),
            (
                "type deactivate to leave the environment",
                "to start over, simply delete the .venv folder and create a new one",
            ),
            (
                "point your editor at the Python interpreter in .venv",
                "VS Code asks which interpreter to use when it finds the folder",
            ),
            (
                "do not commit the environment folder to git",
                "add .venv to .gitignore and share requirements.txt instead",
            ),
        ),
        synonyms={
            "create": ("make", "set up"),
            "environment": ("env",),
            "folder": ("directory",),
            "separate": ("isolated",),
            "record": ("capture", "save"),
            "leave": ("exit", "quit"),
            "delete": ("remove",),
            "point": ("set",),
            "editor": ("IDE",),
            "share": ("commit",),
        },
        boilerplate=(
            "Python tutorials for beginners are listed in the sidebar.",
            "This question was closed as a duplicate.",
            "Thanks for asking, Python packaging confuses many people.",
        ),
    ),
    _Topic(
        name="train delays",
        query="compensation for a delayed train",
        aspects=(
            (
                "if your train is delayed by 60 minutes or more you can claim compensation",
                "compensation for a delayed train is 25 percent of the fare, or 50 percent "
                "after two hours",
            ),
            (
                "claim delayed train compensation online with the passenger rights form",
                "attach your ticket and state which train was delayed",
            ),
            (
                "compensation claims for a delayed journey must be sent within three months",
                "late requests are refused",
            ),
            (
                "if a delayed arrival makes you miss a connection, the delay at your final "
                "destination counts",
                "keep the confirmation from staff if they changed your route",
            ),
            (
                "when the delay will exceed an hour you may take another train or a different "
                "route",
                "your ticket stays valid on the next service",
            ),
            (
                "season ticket holders get compensation when punctuality falls below the "
                "monthly target",
                "the operator publishes the figures each month",
            ),
        ),
        synonyms={
            "delayed": ("late",),
            "claim": ("request", "apply for"),
            "attach": ("add", "upload"),
            "state": ("say", "note"),
            "refused": ("rejected", "turned down"),
            "exceed": ("be more than", "pass"),
            "stays": ("remains", "is still"),
            "publishes": ("posts", "releases"),
        },
        boilerplate=(
            "We apologise for any inconvenience caused to your journey.",
            "Thank you for travelling with us today.",
            "Live departure boards for every train are available on our app.",
        ),
    ),
    _Topic(
        name="heat pump",
        query="installing a heat pump at home",
        aspects=(
            (
                "installing a heat pump at home costs 8,000 to 15,000 euros",
                "an air-source pump is cheaper than a ground-source one",
            ),
            (
                "heat pump grants can cover up to 40 percent of installing a heat pump at home",
                "apply for the grant before the installer starts work",
            ),
            (
                "good insulation matters first: a draughty home loses warmth faster than any "
                "system can supply it",
                "seal windows and insulate the loft before the installation",
            ),
            (
                "older radiators may be too small for the low flow temperatures of a heat pump",
                "underfloor heating or larger radiators keep the system efficient",
            ),
            (
                "the outdoor unit hums at about 40 decibels",
                "place it away from bedroom windows and check local planning rules for your home",
            ),
            (
                "with a seasonal efficiency of 3 to 4 each unit of electricity gives three to "
                "four units of heat",
                "running costs depend mostly on your electricity tariff",
            ),
        ),
        synonyms={
            "installing": ("fitting", "putting in"),
            "at home": ("in your house", "in a house"),
            "cheaper": ("less expensive", "more affordable"),
            "cover": ("pay for", "fund"),
            "starts": ("begins",),
            "draughty": ("leaky", "poorly sealed"),
            "older": ("old", "existing"),
            "hums": ("runs",),
            "place": ("put", "site"),
            "mostly": ("largely", "mainly"),
        },
        boilerplate=(
            "Thanks for your interest in our home energy products.",
            "A heat pump specialist will call you back within two days.",
            "Sign up for our newsletter on greener homes.",
        ),
    ),
    _Topic(
        name="GDPR data requests",
        query="how to make a GDPR data access request",
        aspects=(
            (
                "to make a GDPR data access request, email the company's privacy officer",
                "say that it is a request under Article 15",
            ),
            (
                "once you make a GDPR data access request, the company must reply within a month",
                "for a complex request it may extend the deadline by two months",
            ),
            (
                "the request entitles you to a copy of your personal data",
                "you also learn the purposes, the recipients and how long it is kept",
            ),
            (
                "they may ask for proof of identity before answering the request",
                "send only what is needed, such as a copy of an ID card",
            ),
            (
                "the first copy of your data is free of charge",
                "a reasonable fee is allowed only for extra copies or clearly excessive demands",
            ),
            (
                "if they ignore your request, complain to the national supervisory authority",
                "keep copies of your emails as evidence",
            ),
        ),
        synonyms={
            "request": ("demand", "application"),
            "make": ("submit", "file"),
            "email": ("write to", "contact"),
            "reply": ("respond", "answer"),
            "extend": ("push back", "prolong"),
            "entitles you to": ("gives you", "earns you"),
            "proof": ("evidence",),
            "free of charge": ("free", "at no cost"),
            "ignore": ("do not respond to",),
            "complain": ("lodge a complaint",),
        },
        boilerplate=(
            "Thank you for contacting our privacy team.",
            "Our privacy policy was updated last year.",
            "This page uses cookies to improve your experience.",
        ),
    ),
    _Topic(
        name="houseplant care",
        query="houseplant care tips",
        aspects=(
            (
                "houseplant care tips start with watering: water a houseplant only when the "
                "top 3 cm of soil feel dry",
                "overwatering kills more houseplants than any other mistake",
            ),
            (
                "houseplant care tips for light: place each houseplant near a bright window",
                "keep each one out of harsh midday sun",
            ),
            (
                "good houseplant care includes repotting in spring when roots circle the pot "
                "or poke out of the drainage holes",
                "choose a pot only one size larger",
            ),
            (
                "sticky leaves or fine webs point to aphids or spider mites",
                "wipe the leaves and spray with diluted insecticidal soap as part of regular care",
            ),
            (
                "feed with a diluted liquid fertiliser every two weeks from April to September",
                "stop feeding in winter, when houseplant growth slows",
            ),
            (
                "tropical plants such as calatheas want humid air",
                "a useful care trick is to group them or stand the pot on a tray of wet pebbles",
            ),
        ),
        synonyms={
            "houseplant": ("indoor plant", "pot plant"),
            "tips": ("pointers", "basics"),
            "kills": ("harms", "ruins"),
            "harsh": ("strong", "hot"),
            "bright": ("sunny",),
            "poke": ("grow",),
            "wipe": ("clean",),
            "feed": ("nourish",),
            "want": ("prefer", "like"),
            "stand": ("set", "put"),
        },
        boilerplate=(
            "Browse our full range of indoor plants and pots.",
            "Free delivery on orders over 30 euros.",
            "Thank you for your question, our plant doctor will reply soon.",
        ),
    ),
    _Topic(
        name="running shoes",
        query="how to choose running shoes",
        aspects=(
            (
                "when you choose running shoes, try the running shoes on in the afternoon",
                "leave a thumb's width between your longest toe and the end of the shoe",
            ),
            (
                "choose running shoes for the surface: road running shoes have smooth soles",
                "trail models have deep lugs for grip on mud and rocks",
            ),
            (
                "a gait analysis at a running store shows whether your foot rolls inward",
                "stability shoes correct overpronation",
            ),
            (
                "replace your shoes every 500 to 800 kilometres",
                "flattened midsoles and creases are signs the cushioning is gone",
            ),
            (
                "heel-to-toe drop ranges from 0 to 12 mm",
                "switch to a lower drop gradually to avoid calf strain when running",
            ),
            (
                "mid-priced shoes around 120 euros suit most runners",
                "the most expensive pair is not automatically the best",
            ),
        ),
        synonyms={
            "shoes": ("trainers",),
            "choose": ("pick", "buy"),
            "leave": ("allow", "keep"),
            "deep": ("big", "chunky"),
            "grip": ("traction",),
            "store": ("shop",),
            "correct": ("reduce", "control"),
            "replace": ("swap",),
            "gradually": ("slowly", "step by step"),
            "suit": ("are right for", "work for"),
        },
        boilerplate=(
            "Thank you for shopping with us.",
            "Members get free returns within 30 days.",
            "Sign up to hear about new releases first.",
        ),
    ),
    _Topic(
        name="mortgage rates",
        query="compare mortgage interest rates",
        aspects=(
            (
                "compare mortgage interest rates by the APRC, which includes fees",
                "a deal with low rates can still cost more if its fees are high",
            ),
            (
                "compare fixed and variable mortgage interest rates",
                "a fixed rate stays the same for 5 to 10 years while a variable one follows the "
                "central bank",
            ),
            (
                "a deposit of 20 percent or more and a good credit history earn lower "
                "mortgage rates",
                "lenders price risk by the loan-to-value ratio",
            ),
            (
                "an independent mortgage broker can search the whole market for you",
                "ask whether they charge a fee or are paid commission by the lender",
            ),
            (
                "check the early repayment charge before you sign",
                "it can be up to 5 percent of the balance if you leave the mortgage during the "
                "fixed period",
            ),
            (
                "start looking for a new deal six months before your current one ends",
                "otherwise you move onto the lender's standard variable rate, often with higher "
                "interest",
            ),
        ),
        synonyms={
            "mortgage": ("home loan",),
            "compare": ("weigh up", "assess"),
            "includes": ("counts", "covers"),
            "high": ("steep", "large"),
            "follow": ("track",),
            "earn": ("get", "win"),
            "search": ("scan", "look across"),
            "sign": ("commit",),
            "start looking": ("begin searching", "start shopping around"),
            "move onto": ("fall onto", "drop to"),
        },
        boilerplate=(
            "Thank you for your mortgage enquiry.",
            "Your home may be repossessed if you do not keep up repayments.",
            "Call us on weekdays between 9 and 5.",
        ),
    ),
)

# Safe in any topic. Like a topic's own entries, one that touches a word of the query is a
# rarer *query swap* (see `_variant`).
_GENERAL_SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "choose": ("select", "pick"),
    "usually": ("typically", "normally"),
    "about": ("around", "roughly"),
    "at least": ("a minimum of",),
    "needs": ("requires",),
    "need": ("require",),
    "check": ("verify",),
    "many": ("lots of",),
}
_QUERY_SWAP = 0.5  # the chance that a variant swaps one of the query's words

# (prefix, whether the sentence after it starts with a capital)
_PREFIXES: tuple[tuple[str, bool], ...] = (
    ("", True),
    ("", True),
    ("", True),
    ("Note: ", True),
    ("Tip: ", True),
    ("Good to know: ", True),
    ("In short, ", False),
    ("Basically, ", False),
)
_JOINERS = ("; ", ". ", " - ")
# First words of a second clause that points back at the first: such clauses keep their order.
_LEADS_BACK = frozenset("but it its otherwise plus so their then they this".split())

# Lines of a help page that answer no query.
_GENERIC_BOILERPLATE = (
    "Was this article helpful?",
    "Thank you for contacting us; a member of our team will reply within two working days.",
    "Please rate your experience with our support.",
    "This page was last updated in March.",
    "See also: related articles and frequently asked questions.",
    "Our offices are closed on public holidays.",
)

_WORD = re.compile(r"\w+")
# Function words that do not count as the query's words.
_STOP = frozenset(
    "a an and at do for how i in is it me my of on or the to what when where which why with"
    " you your".split()
)


def _query_words(query: str) -> set[str]:
    return {word for word in _WORD.findall(query.casefold()) if word not in _STOP}


def _overlap(clauses: tuple[str, str], query_words: set[str]) -> int:
    """How many word occurrences of the sentence are words of the query."""
    words = _WORD.findall(" ".join(clauses).casefold())
    return sum(word in query_words for word in words)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(phrase)}\b")


def _variant(
    rng: random.Random,
    clauses: tuple[str, str],
    synonyms: Mapping[str, tuple[str, ...]],
    query_words: set[str],
) -> str:
    """A light rewording of the sentence that `clauses` make: up to two synonym swaps that
    leave the query's words alone, and with chance `_QUERY_SWAP` one that replaces a query
    word (its variant a little less relevant, as a paraphrase would be); the clauses in either
    order; a joiner, a prefix and a final stop or none."""
    first, second = clauses
    usable = [phrase for phrase in synonyms if _pattern(phrase).search(f"{first} | {second}")]
    touches = [bool(set(_WORD.findall(phrase.casefold())) & query_words) for phrase in usable]
    plain = [phrase for phrase, touch in zip(usable, touches, strict=True) if not touch]
    chosen = rng.sample(plain, min(len(plain), rng.randint(0, 2)))
    query = [phrase for phrase, touch in zip(usable, touches, strict=True) if touch]
    if query and _overlap(clauses, query_words) >= 3 and rng.random() < _QUERY_SWAP:
        chosen.append(rng.choice(query))
    for phrase in chosen:
        replacement = rng.choice(synonyms[phrase])
        if _pattern(phrase).search(first):
            first = _pattern(phrase).sub(replacement, first, count=1)
        else:
            second = _pattern(phrase).sub(replacement, second, count=1)
    if rng.random() < 0.4 and _WORD.findall(second)[0] not in _LEADS_BACK:
        first, second = second, first
    joiner = rng.choice(_JOINERS)
    if joiner == ". ":
        second = _capitalise(second)
    prefix, capital = rng.choice(_PREFIXES)
    if capital:
        first = _capitalise(first)
    end = rng.choice((".", ".", ""))
    return f"{prefix}{first}{joiner}{second}{end}"


def _variants(
    rng: random.Random,
    topic: _Topic,
    aspect: int,
    query_words: set[str],
    count: int,
    taken: set[str],
    base: bool,
) -> list[str]:
    """`count` distinct rewordings of `topic`'s `aspect` not in `taken` (which they join); the
    base sentence first when `base` and it is free."""
    clauses = topic.aspects[aspect]
    synonyms = {**_GENERAL_SYNONYMS, **topic.synonyms}
    out: list[str] = []
    if base:
        text = f"{_capitalise(clauses[0])}; {clauses[1]}."
        if text not in taken:
            out.append(text)
            taken.add(text)
    for _ in range(50 * count):
        if len(out) == count:
            break
        text = _variant(rng, clauses, synonyms, query_words)
        if text not in taken:
            out.append(text)
            taken.add(text)
    if len(out) < count:
        raise RuntimeError(f"could not reword {clauses[0]!r} {count} ways")
    return out


def _group_sizes(rng: random.Random, topic: _Topic, candidates: int) -> list[int]:
    """Per aspect (written order), its number of near-duplicates: 5-8 for the aspect that
    repeats the query's words most, 4-7 for the next, 2-3 for the others; the largest trimmed
    (to one each at least) while they do not fit in `candidates`."""
    words = _query_words(topic.query)
    # Stable: ties keep the written order.
    by_overlap = sorted(range(len(topic.aspects)), key=lambda a: -_overlap(topic.aspects[a], words))
    ranges = [(5, 8), (4, 7)] + [(2, 3)] * (len(by_overlap) - 2)
    sizes = [0] * len(topic.aspects)
    for aspect, (low, high) in zip(by_overlap, ranges, strict=True):
        sizes[aspect] = rng.randint(low, high)
    while sum(sizes) > candidates and max(sizes) > 1:
        sizes[sizes.index(max(sizes))] -= 1
    return sizes


def _make_query(rng: random.Random, topic: _Topic, candidates: int) -> LabelledQuery:
    query_words = _query_words(topic.query)
    taken: set[str] = set()
    texts: list[str] = []
    labels: list[int | None] = []
    for aspect, size in enumerate(_group_sizes(rng, topic, candidates)):
        texts += _variants(rng, topic, aspect, query_words, size, taken, base=True)
        labels += [aspect] * size

    room = candidates - len(texts)
    own = rng.sample(topic.boilerplate, min(room, rng.randint(1, len(topic.boilerplate))))
    generic = rng.sample(_GENERIC_BOILERPLATE, min(room - len(own), rng.randint(1, 2)))
    fillers = [*own, *generic]
    taken.update(fillers)
    # Sentences of the other topics, each (topic, aspect) once before any repeats.
    others = [
        (other, aspect)
        for other in _TOPICS
        if other is not topic
        for aspect in range(len(other.aspects))
    ]
    sources: list[tuple[_Topic, int]] = []
    while len(fillers) + len(sources) < room:
        rng.shuffle(others)
        sources += others[: room - len(fillers) - len(sources)]
    for other, aspect in sources:
        fillers += _variants(
            rng, other, aspect, _query_words(other.query), 1, taken, base=rng.random() < 0.5
        )
    texts += fillers
    labels += [None] * len(fillers)

    order = list(range(len(texts)))
    rng.shuffle(order)
    return LabelledQuery(
        query=topic.query,
        candidates=[texts[i] for i in order],
        aspects=[labels[i] for i in order],
        topic=topic.name,
    )


def make_dataset(seed: int = 0, queries: int = 12, candidates: int = 40) -> list[LabelledQuery]:
    """`queries` labelled queries of `candidates` candidates each (module docstring), the same
    for the same arguments. The topics come in a shuffled order, repeating in a new order once
    all were used; the first queries do not depend on `queries`. Raises `ValueError` for fewer
    than 6 candidates (one per aspect) or a negative number of queries."""
    if queries < 0:
        raise ValueError("queries must not be negative")
    smallest = max(len(topic.aspects) for topic in _TOPICS)
    if candidates < smallest:
        raise ValueError(f"candidates must be at least {smallest}, one per aspect")
    rng = random.Random(seed)
    order: list[_Topic] = []
    out: list[LabelledQuery] = []
    for _ in range(queries):
        if not order:
            order = list(_TOPICS)
            rng.shuffle(order)
        out.append(_make_query(rng, order.pop(0), candidates))
    return out


def _summary(item: LabelledQuery) -> str:
    sizes = Counter(aspect for aspect in item.aspects if aspect is not None)
    groups = " ".join(str(sizes[aspect]) for aspect in sorted(sizes))
    distractors = item.aspects.count(None)
    return (
        f"{item.topic:<28} {len(item.candidates):>3} candidates  groups {groups:<16}"
        f" distractors {distractors:>2}  {item.query!r}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--out", type=Path, help="write the set to this file as JSON")
    args = parser.parse_args()
    dataset = make_dataset(args.seed, args.queries, args.candidates)
    for item in dataset:
        print(_summary(item))
    if args.out is not None:
        document = {
            "seed": args.seed,
            "candidates": args.candidates,
            "queries": [{**asdict(item), "n_aspects": item.n_aspects} for item in dataset],
        }
        args.out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {len(dataset)} queries to {args.out}")


if __name__ == "__main__":
    main()
