"""A labelled paraphrase set for semantic search: 24 e-mails on distinct matters and, for
each, a query a reviewer might type that says the same thing in other words (the query's
content words are mostly not in its target). Used by tests/test_semantic.py and
perf/bench_search.py."""

from __future__ import annotations

#: (subject, body, query): the query's answer is the e-mail of its row
PARAPHRASES: list[tuple[str, str, str]] = [
    ("Parking garage closed", "The car park under the office will be shut for resurfacing all of next week, "
     "please leave your vehicles at the station lot.", "where should staff put their cars while the lot is repaired"),
    ("Laptop stolen", "My notebook computer was taken from the train yesterday evening; IT has locked the account.",
     "someone's portable PC got nicked during a commute"),
    ("Q3 revenue miss", "Sales for July to September came in eight percent under forecast, mainly in retail.",
     "third quarter income was below the projection"),
    ("Flu shots on Tuesday", "A nurse will give influenza vaccinations in room 4 from nine until noon.",
     "getting immunised against the seasonal virus at work"),
    ("Server room overheating", "The air conditioning in the data centre failed and the racks reached 40 degrees.",
     "the cooling broke down where the computers are hosted"),
    ("Holiday party venue", "We booked the rooftop restaurant for the December celebration, dinner at seven.",
     "where is the end of year staff festivity going to be held"),
    ("Resignation letter", "I am writing to inform you that I will leave the company at the end of next month.",
     "an employee gives notice that they are quitting"),
    ("Contract signed with Acme", "Legal confirmed the supply agreement was executed by both parties this morning.",
     "the deal with the vendor has been inked"),
    ("Office move", "From March our team relocates to the fourth floor of the new building on King Street.",
     "the department is changing premises in spring"),
    ("Password reset required", "All accounts must choose new login credentials before Friday because of a breach.",
     "everyone has to change how they sign in after the security incident"),
    ("Lunch order", "I'm getting sandwiches from the deli, tell me what filling you want by eleven.",
     "food run at midday, pick what you'd like to eat"),
    ("Budget freeze", "No new spending may be approved until the finance committee reviews costs in May.",
     "expenditure is on hold pending a review of expenses"),
    ("Fire drill", "The alarm will sound at 2pm on Thursday; evacuate by the stairs and gather in the car park.",
     "practice evacuation of the building this week"),
    ("Printer jammed", "The copier on level two keeps eating paper and shows error E43.",
     "the photocopy machine is broken again"),
    ("Client complaint", "Mr Jones phoned angry that his order arrived damaged and two weeks late.",
     "a customer is unhappy about a late and broken delivery"),
    ("Maternity leave", "Sarah starts her parental absence on 1 June; Tom covers her accounts meanwhile.",
     "a colleague is off work to have a baby"),
    ("Website outage", "Our online shop was down for three hours overnight because the hosting provider failed.",
     "the e-commerce site went offline last night"),
    ("Tax audit", "The revenue service will inspect our books for the last two fiscal years starting next week.",
     "government inspectors are examining the accounts"),
    ("New hire starting", "Please welcome Priya, our new data analyst, who joins the team on Monday.",
     "introducing a recently recruited colleague"),
    ("Shipping delay", "The container with the spring stock is stuck at the port because of a strike.",
     "goods are held up at the harbour by industrial action"),
    ("Board meeting minutes", "Attached are the notes from the directors' session, including the dividend vote.",
     "record of what the executives discussed and decided"),
    ("Expense claims deadline", "Submit receipts for reimbursement by the 25th or they roll into next month.",
     "last day to hand in costs to be paid back"),
    ("Water leak in kitchen", "There is a pipe dripping under the sink in the break room; facilities are on it.",
     "plumbing problem in the staff pantry"),
    ("Conference talk accepted", "Our paper was selected for presentation at the Berlin summit in October.",
     "the event organisers approved our speaking proposal"),
]
