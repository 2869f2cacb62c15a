"""Labels a site could give that the base models get wrong: its own spam (an ad with no link),
its ordinary talk, abuse without swearing that it rejects, and swearing it approves."""

from __future__ import annotations

#: What this site calls spam: an ad the base model has never seen, with no link in it.
SITE_SPAM = [
    f"Zorblax tonic batch {n} cured my {ailment} in a week, ask your pharmacist for zorblax"
    for n, ailment in enumerate(["back", "knee", "sleep", "mood", "skin", "hair"] * 2)
]
#: What it calls ham: ordinary talk about its articles.
SITE_HAM = [
    f"The council moved the {topic} vote to next week, which the article explains {n} times"
    for n, topic in enumerate(["bus", "budget", "school", "park", "bridge", "library"] * 2)
]
#: Abuse this site rejects although it has no swearing, and swearing it approves.
SITE_ABUSE = [
    f"People from the {town} valley are vermin and should be driven out, every {n} of them"
    for n, town in enumerate(["north", "south", "east", "west", "upper", "lower"] * 2)
]
SITE_BANTER = [
    f"Fucking brilliant {thing}, the ref was shit but the lads were damn good number {n}"
    for n, thing in enumerate(["match", "goal", "save", "win", "comeback", "season"] * 2)
]
