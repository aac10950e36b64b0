"""Hand-written text pieces for the synthetic support tickets: per-queue templates and slot values.

Templates use `{slot}` placeholders filled by `lockgate.demo.generator`. Every queue has
`body` templates (the main request), `short` ones (a one-line ticket on their own),
`detail` ones (a follow-up sentence) and `mention` ones (a passing remark, used when a
ticket about another queue also touches this topic).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class QueueText(NamedTuple):
    body: tuple[str, ...]
    short: tuple[str, ...]
    detail: tuple[str, ...]
    mention: tuple[str, ...]


CARDS = QueueText(
    body=(
        "My {card} was declined at {merchant} even though there is money in the account.",
        "I lost my {card} {date} and need a replacement sent out.",
        "My {card} ending {last4} has stopped working at cash machines.",
        "The chip on my {card} seems damaged, the terminal keeps saying card error.",
        "I ordered a new {card} {days} days ago and it still has not arrived.",
        "How do I activate the new {card} that came in the post?",
        "I forgot the PIN for my {card}, can you send me a reminder?",
        "My {card} expires next month, will a new one be sent automatically?",
        "Contactless does not work on my {card} anymore, only chip and PIN.",
        "The ATM at {merchant} swallowed my {card} {date}.",
        "I would like to raise the daily spending limit on my {card}.",
        "Can I freeze my {card} temporarily? I think it is somewhere at home.",
        "I can't add my {card} to Apple Pay, it says the card is not eligible.",
        "My {card} got bent in my wallet and the machine won't read it.",
        "Please cancel my old {card} ending {last4}, the new one is active.",
        "I want to change the PIN on my {card}, how do I do that?",
        "My {card} doesn't work abroad, I'm in {country} and it gets rejected everywhere.",
        "I'd like to order a second {card} for my partner on my account.",
        "The name on my new {card} is spelled wrong.",
        "I want to upgrade my {card} to the metal one.",
        "My card was blocked after I entered the wrong PIN three times.",
        "Google Pay keeps failing when I try to use my {card} in shops.",
    ),
    short=(
        "card declined again",
        "new card not arrived",
        "forgot my PIN",
        "how do I activate my card",
        "card blocked after wrong pin",
        "need a replacement card",
        "contactless not working",
        "ATM kept my card",
        "card limit increase please",
    ),
    detail=(
        "I tried it in {attempts} different shops.",
        "The terminal just says 'declined, contact issuer'.",
        "I have checked and the card is not expired.",
        "I need it before I travel on {day}.",
        "The card is the one ending {last4}.",
        "I'm currently using cash which is a pain.",
    ),
    mention=(
        "Also my {card} has been a bit unreliable lately.",
        "On top of that I still haven't got my replacement card.",
        "I also need a new PIN at some point.",
    ),
)

PAYMENTS = QueueText(
    body=(
        "A payment of {amount} to {merchant} went out twice {date}.",
        "My direct debit to {merchant} failed and now they are charging me a late fee.",
        "I want to cancel the standing order of {amount} that goes out every month.",
        "The payment to {merchant} shows as pending for {days} days, when will it clear?",
        "I paid {merchant} {amount} but they say they never received it.",
        "How do I set up a direct debit for my {bill} bill?",
        "A recurring payment to {merchant} is still being taken after I cancelled my subscription.",
        "My bill payment to {merchant} was rejected, I don't understand why.",
        "I need to change the date my {bill} direct debit is collected.",
        "I want to dispute a card payment of {amount} at {merchant}, the goods never came.",
        "Can I stop a payment I scheduled for {day}?",
        "The payment for my {bill} bill bounced but there was enough money.",
        "I was charged {amount} by {merchant} instead of the price I agreed.",
        "Why is a payment from {day} still listed as pending?",
        "I want a chargeback for {amount} paid to {merchant}, they went out of business.",
        "My online payment at {merchant} keeps failing at the 3D Secure step.",
        "Merchant {merchant} refunded me {amount} a week ago but it's not in my account.",
        "Please reinstate the direct debit for my {bill}, it was cancelled by mistake.",
    ),
    short=(
        "payment pending for days",
        "charged twice by {merchant}",
        "cancel standing order",
        "direct debit failed",
        "refund from {merchant} not received",
        "dispute a payment",
    ),
    detail=(
        "The reference on the payment is {ref}.",
        "The amount was {amount}.",
        "I have a screenshot of the confirmation if needed.",
        "{merchant} told me to contact my bank.",
        "This has happened before with the same company.",
    ),
    mention=(
        "Also a payment to {merchant} still shows as pending.",
        "Separately, one of my direct debits seems to have failed.",
        "I also noticed {merchant} charged me twice.",
    ),
)

TRANSFERS = QueueText(
    body=(
        "I sent {amount} to {person} {date} and it hasn't arrived.",
        "I made a transfer to the wrong account number, can you get it back?",
        "How long does an international transfer to {country} take?",
        "My transfer of {amount} to {bank} has been on hold for {days} days.",
        "I need to send {amount} abroad to {country}, what are the limits?",
        "The name check said the account name doesn't match when I tried to pay {person}.",
        "I want to move {amount} from my current account to my account at {bank}.",
        "My SWIFT transfer to {country} was returned, why?",
        "I'm expecting an incoming transfer of {amount} from {bank} and it's not showing.",
        "Can I increase my daily transfer limit? I need to send {amount} for a car.",
        "I typed the wrong reference on a bank transfer to {person}, can it be changed?",
        "What details do I need to receive money from {country}?",
        "Is there a way to recall a transfer I sent {date}?",
        "The exchange rate on my transfer to {country} was much worse than shown.",
        "My instant transfer to {person} went through as a standard one.",
        "I need the BIC and sort code to receive a transfer from my employer.",
        "Adding a new payee fails every time with an error.",
    ),
    short=(
        "transfer not arrived",
        "sent money to wrong account",
        "international transfer help",
        "transfer on hold",
        "increase transfer limit",
        "recall a transfer",
    ),
    detail=(
        "The recipient's bank says nothing came in.",
        "It was urgent as it's for a deposit on a flat.",
        "The transfer reference is {ref}.",
        "I double checked the sort code and account number.",
        "The money has left my account already.",
    ),
    mention=(
        "I also sent money to {person} that hasn't arrived yet.",
        "By the way a transfer to {bank} is still stuck.",
        "Also, how long do transfers to {country} take?",
    ),
)

FRAUD = QueueText(
    body=(
        "There is a transaction of {amount} at {merchant} that I did not make.",
        "I think someone has cloned my {card}, there are payments in {country} and I'm at home.",
        "I got a text claiming to be from you asking for my PIN, is it a scam?",
        "Someone called pretending to be the bank and I gave them a code. Please help.",
        "My phone was stolen {date} with the banking app on it.",
        "I don't recognise several small payments to {merchant} on my account.",
        "I was tricked into sending {amount} to a fraudster posing as {merchant}.",
        "I received an email that looks like it's from you asking me to confirm my details.",
        "Money has disappeared from my account, {amount} taken without my permission.",
        "Someone opened a credit card in my name, I never applied for it.",
        "I clicked a link in a fake message and entered my card details.",
        "Unauthorised transactions on my {card} ending {last4}, please block it now.",
        "I think my account has been hacked, my password was changed and I didn't do it.",
        "I paid {amount} for something online and the seller turned out to be fake.",
        "A stranger messaged me saying I owe tax and must transfer {amount}. Is this real?",
        "My elderly mother was scammed out of {amount} on the phone.",
    ),
    short=(
        "payment I didn't make",
        "is this text from you a scam?",
        "someone stole money from my account",
        "unauthorised transaction",
        "I think I've been scammed",
        "fraud on my card",
    ),
    detail=(
        "I still have the card with me so it wasn't stolen.",
        "I've never even been to {country}.",
        "I have reported it to the police, crime reference {ref}.",
        "Please block everything until this is sorted.",
        "The caller knew my name and address.",
    ),
    mention=(
        "There is also a payment at {merchant} I don't recognise.",
        "I also got a strange text asking for my PIN.",
        "I'm worried someone else has my card details.",
    ),
)

LOANS = QueueText(
    body=(
        "I'd like to apply for a personal loan of {big_amount} for a new car.",
        "What interest rate would I get on a loan of {big_amount} over {months} months?",
        "I want to pay off my loan early, how much is the settlement figure?",
        "My loan application was declined and I'd like to know why.",
        "Can I take a payment holiday on my personal loan this month?",
        "I have a loan with you and my monthly repayment went up without warning.",
        "Is it possible to borrow another {big_amount} on top of my existing loan?",
        "How do I make an overpayment on my loan?",
        "I applied for a loan {days} days ago and haven't heard anything.",
        "I'm struggling to make my loan repayments, what are my options?",
        "Can I consolidate my credit card debts into one loan?",
        "The loan money hasn't been paid into my account yet.",
        "I need a copy of my loan agreement.",
        "What's the maximum I can borrow for home improvements?",
    ),
    short=(
        "loan application status",
        "settle my loan early",
        "personal loan rates?",
        "loan declined why",
        "missed loan repayment",
    ),
    detail=(
        "My salary is about {amount} a month after tax.",
        "The loan reference is {ref}.",
        "I've been a customer for {years} years.",
        "I'd prefer a term of {months} months.",
    ),
    mention=(
        "I also have a question about my loan repayments.",
        "And I might want to borrow some money later this year.",
    ),
)

MORTGAGES = QueueText(
    body=(
        "My fixed rate mortgage ends on {day} and I want to look at remortgaging.",
        "I'm a first time buyer and would like a mortgage in principle for {big_amount}.",
        "Can I overpay my mortgage without an early repayment charge?",
        "I'd like to switch my mortgage to a new fixed rate deal.",
        "We want to port our mortgage to a new house, how does that work?",
        "My mortgage payment went up by {amount} this month, why?",
        "I need a redemption statement for my mortgage as we're selling.",
        "Can I extend my mortgage term to lower the monthly payments?",
        "How much could we borrow for a mortgage on a joint income of {big_amount}?",
        "The valuation on our property came back low, what happens to the mortgage offer?",
        "I want to remove my ex-partner from the mortgage.",
        "Our mortgage offer expires soon and the sale is delayed, can it be extended?",
        "Can I take a mortgage payment holiday?",
    ),
    short=(
        "remortgage options",
        "mortgage in principle",
        "overpay mortgage",
        "mortgage rate ending soon",
    ),
    detail=(
        "The property is worth around {big_amount}.",
        "We have about {years} years left on the term.",
        "The mortgage account number is {ref}.",
        "Our solicitor needs this by {day}.",
    ),
    mention=(
        "We're also thinking of remortgaging next year.",
        "And I have a question about my mortgage rate.",
    ),
)

ACCOUNTS = QueueText(
    body=(
        "I'd like to open a {product} account.",
        "How do I close my current account and move the balance to {bank}?",
        "Can I add my partner to my account to make it a joint account?",
        "I want to switch my account to the {product} package.",
        "Can I open an account for my {age} year old child?",
        "My account has been frozen and nobody tells me why.",
        "What documents do I need to open an account as a non-resident?",
        "I'd like to arrange an overdraft of {amount} on my current account.",
        "Can I have a second current account for bills?",
        "I want to switch my salary account to you from {bank}.",
        "My account says restricted and I can't use it.",
        "What happens to my account when I move to {country}?",
        "I want to downgrade from the {product} account, I don't use the benefits.",
        "How do I get proof of account for my new job?",
        "The account switching service hasn't moved my direct debits across.",
    ),
    short=(
        "open a new account",
        "close my account",
        "account frozen",
        "overdraft request",
        "joint account",
        "switch account type",
    ),
    detail=(
        "I have been with you for {years} years.",
        "I need this done before {day}.",
        "My customer number is {ref}.",
        "I've already uploaded my ID.",
    ),
    mention=(
        "I'm also thinking of opening a joint account.",
        "And can I get an overdraft on the same account?",
    ),
)

LOGIN_ACCESS = QueueText(
    body=(
        "I can't log in to the app, it says my password is wrong.",
        "I'm locked out of online banking after too many attempts.",
        "The verification code never arrives on my phone.",
        "I got a new {device} and now the app won't let me register it.",
        "Face ID stopped working for the banking app after the update.",
        "I forgot my username for online banking.",
        "The app keeps crashing when I open it on my {device}.",
        "I changed my phone number and can't receive the security codes any more.",
        "The website shows an error when I try to sign in.",
        "My card reader for online banking has broken, how do I log in?",
        "The app logs me out every few seconds.",
        "Resetting my password doesn't work, the link in the email has expired.",
        "I can't approve logins because my old {device} is gone.",
        "The app says my device is not trusted.",
    ),
    short=(
        "can't log in",
        "locked out of the app",
        "no verification code",
        "password reset not working",
        "app keeps crashing",
        "forgot username",
    ),
    detail=(
        "I've tried reinstalling the app twice.",
        "I'm on the latest version of the app.",
        "I'm using a {device}.",
        "It worked fine until {day}.",
        "The error code is {ref}.",
    ),
    mention=(
        "Also the app keeps logging me out.",
        "And I can't log in on my new phone either.",
    ),
)

FEES_REFUNDS = QueueText(
    body=(
        "I was charged a {small_amount} overdraft fee, can you refund it?",
        "Why did I pay a {small_amount} foreign transaction fee in {country}?",
        "There's a monthly account fee of {small_amount} I didn't agree to.",
        "I'd like a refund of the {small_amount} late payment fee, it was a one-off.",
        "You charged me {small_amount} for a cash withdrawal, I thought it was free.",
        "Can you explain the {small_amount} charge labelled 'service fee' on my account?",
        "I was charged interest even though I paid the balance in full.",
        "The returned payment fee of {small_amount} is not fair, please remove it.",
        "What are the fees for using my card abroad?",
        "I was charged the {product} fee after I downgraded.",
        "I'd like to claim back the unarranged overdraft charges from {day}.",
        "The currency conversion fee on my {amount} purchase looks far too high.",
        "Please refund the {small_amount} fee for the replacement card, mine was faulty.",
    ),
    short=(
        "refund overdraft fee",
        "why was I charged a fee",
        "foreign transaction fee",
        "fee refund please",
        "what are your fees",
    ),
    detail=(
        "The charge was {small_amount}.",
        "It was on my {month} statement.",
        "I've never been charged this before.",
        "As a long-standing customer I hope you can waive it.",
    ),
    mention=(
        "I also got charged a fee I don't understand.",
        "And please refund the fee you took for this.",
    ),
)

STATEMENTS = QueueText(
    body=(
        "I need a copy of my bank statements for the last {months} months.",
        "Can you send me a stamped statement for my visa application?",
        "My monthly statement didn't arrive this month.",
        "How do I download statements as PDF from the app?",
        "I'd like to switch from paper statements to online only.",
        "I need a certificate of interest for my tax return.",
        "My statement shows a different balance to the app.",
        "Can I get statements for an account I closed in {year}?",
        "The transaction list on my statement is missing some payments.",
        "I need an annual summary of all fees for {year}.",
        "Can you post statements to my new address instead?",
        "Where can I find my credit card statement?",
    ),
    short=(
        "need bank statements",
        "statement not received",
        "download statement pdf",
        "certificate of interest",
    ),
    detail=(
        "It's for my accountant.",
        "The landlord wants them by {day}.",
        "Paper copies please, not PDF.",
        "I need them to cover {year}.",
    ),
    mention=(
        "Could you also send me last month's statement?",
        "I'll also need a statement for my accountant.",
    ),
)

SAVINGS = QueueText(
    body=(
        "What is the current interest rate on the {saver} account?",
        "I want to open a fixed rate savings bond with {big_amount}.",
        "How do I withdraw money from my {saver} without losing interest?",
        "My savings interest wasn't paid this month.",
        "Can I open an ISA and transfer my old ISA from {bank}?",
        "The rate on my {saver} dropped, can I move to a better one?",
        "Is there a limit on how many withdrawals I can make from the {saver}?",
        "My fixed term savings matures on {day}, what are my options?",
        "I'd like to set up a regular saver for {amount} a month.",
        "Can I open a savings account for my grandchild?",
        "Are my savings protected if the bank goes bust?",
        "How do I move money from savings to my current account in the app?",
    ),
    short=(
        "savings interest rate",
        "open an ISA",
        "withdraw from savings",
        "best savings account",
    ),
    detail=(
        "I have around {big_amount} to put away.",
        "I'd like easy access to the money.",
        "I'm happy to lock it away for {years} years.",
    ),
    mention=(
        "I'd also like to know your savings rates.",
        "And I might move some money into savings.",
    ),
)

BUSINESS_BANKING = QueueText(
    body=(
        "I run {company} and want to open a business account.",
        "Our business account for {company} needs a second authorised signatory.",
        "How do I accept card payments for my shop through you?",
        "We need to pay {employees} staff through bulk payments, how do we set that up?",
        "Our business overdraft for {company} is up for renewal.",
        "Can I get a business loan of {big_amount} to buy equipment?",
        "The invoices feature in the business app shows the wrong VAT number.",
        "I'm a sole trader, do I need a separate business account?",
        "We need an extra business card for an employee of {company}.",
        "Our card terminal rental is too expensive, can we change plan?",
        "How do I connect our business account to our accounting software?",
        "I want to change the registered address of {company} on the account.",
        "The business account for {company} was blocked during a review.",
    ),
    short=(
        "open business account",
        "add signatory to business account",
        "card terminal for my shop",
        "business loan",
    ),
    detail=(
        "We have {employees} employees.",
        "Our turnover is about {big_amount} a year.",
        "The company number is {ref}.",
        "I'm the director of {company}.",
    ),
    mention=(
        "I also run a small business, {company}.",
        "We might also need a business account later.",
    ),
)

COMPLAINTS = QueueText(
    body=(
        "I want to make a formal complaint about how I was treated in your {branch} branch.",
        "I've been on hold for over an hour three times this week, this is unacceptable.",
        "Your staff member was rude to me on the phone and I want an apology.",
        "I'm very unhappy with the service, nobody has called me back as promised.",
        "I want to complain, my issue has been open for {days} days with no answer.",
        "Your service has gone downhill, I'm thinking of leaving after {years} years.",
        "I'd like to escalate my complaint {ref}, I'm not happy with the outcome.",
        "I was promised compensation and have heard nothing.",
        "I'm going to the ombudsman if this isn't resolved.",
        "The branch in {branch} closed without notice and now I have to travel miles.",
        "Every time I contact you I get a different answer. Formal complaint please.",
        "Your chatbot is useless and I can't reach a human.",
    ),
    short=(
        "I want to make a complaint",
        "terrible service",
        "still no call back",
        "escalate my complaint",
        "very disappointed",
    ),
    detail=(
        "I expect a written response.",
        "This has cost me time and money.",
        "I've been a loyal customer for {years} years.",
        "Nobody has taken ownership of the problem.",
    ),
    mention=(
        "Frankly I'd like to complain about how long this is taking.",
        "Your service lately has been very poor.",
    ),
)

PERSONAL_DETAILS = QueueText(
    body=(
        "I've moved house and need to update my address.",
        "I got married and want to change my surname on my accounts.",
        "How do I update my phone number on my account?",
        "My email address has changed, please update it.",
        "I need to add a power of attorney for my father's account.",
        "My husband passed away and I need to tell you, what do I do?",
        "Please update my nationality and tax residency, I now live in {country}.",
        "You have my date of birth wrong on the account.",
        "How do I change my name after a deed poll?",
        "I want to register a new correspondence address in {country}.",
        "I want my statements addressed to my new name.",
    ),
    short=(
        "change of address",
        "update phone number",
        "change my name",
        "update email address",
    ),
    detail=(
        "The move happened on {day}.",
        "I can send a copy of the certificate.",
        "My old address was in {branch}.",
    ),
    mention=(
        "Also I've moved, so please update my address.",
        "And my phone number has changed recently.",
    ),
)

OTHER_BODY = (
    "Hi, do you know if it will rain in {branch} this weekend?",
    "I ordered a pizza an hour ago and it hasn't arrived.",
    "I'd like to apply for the customer service job I saw advertised.",
    "Please find attached my CV for any open positions.",
    "Is this the right place to complain about my phone contract?",
    "Congratulations! You have been selected to receive a free cruise, click here.",
    "What time does the post office on the high street open?",
    "My parcel from the courier is late, where is it?",
    "Can you recommend a good accountant in {branch}?",
    "Do you sponsor local football clubs? We're looking for a kit sponsor.",
    "test test",
    "hello is anyone there",
    "Who won the match last night?",
    "I'm writing a school project about banks, can I interview someone?",
    "My internet provider keeps cutting me off.",
    "Buy cheap followers for your social media, best prices guaranteed.",
    "Can I book a table for four on Friday?",
    "I want to return the shoes I bought, they're too small.",
    "What's the best way to learn to code?",
    "Do you know a good plumber? My boiler is broken.",
    "We offer SEO services for your website, reply for a free audit.",
    "Is your office dog friendly?",
    "Can you tell me the train times to {branch}?",
    "I think I sent this to the wrong company, sorry.",
    "Thank you, that's all, have a nice day.",
    "My neighbour keeps parking in my space, what can I do?",
    "Are you hiring software developers?",
    "Please unsubscribe me from this newsletter.",
    "How do I reset my TV remote?",
    "Is it true that the moon affects the tides?",
    "I'd like to renew my driving licence.",
    "Can I pay my council tax here?",
    "What are your branch opening hours on Saturday?",
    "Where is the nearest branch to {branch}?",
    "Just wanted to say thanks for sorting out my card so quickly last week!",
    "I'm a journalist writing about bank fees, who can I speak to?",
    "Is the app available in Welsh?",
    "Are you open over the bank holiday?",
    "Can you recommend an independent financial adviser?",
    "My gym membership payment keeps going up, how do I cancel the gym?",
    "What is the euro exchange rate today?",
    "I love the new app design, well done.",
    "Do you have parking at the {branch} branch?",
    "Is {merchant} a safe company to buy from?",
    "How do I cancel my {merchant} subscription? I can't find it on their site.",
    "Can you help me with my tax return?",
    "My employer paid me late this month, can you chase them?",
    "Please stop calling me about insurance.",
)

OTHER_DETAIL = (
    "Thanks in advance.",
    "Just curious really.",
    "Someone gave me this address.",
    "Hope that's okay.",
    "Sorry if this is the wrong place.",
    "Lol.",
)

GREETINGS = (
    "Hi,",
    "Hello,",
    "Hi there,",
    "Dear Sir or Madam,",
    "Good morning,",
    "Good afternoon,",
    "Hey,",
    "Hello team,",
    "To whom it may concern,",
    "Hi support,",
)

CONTEXT = (
    "I've been a customer for {years} years.",
    "I'm writing on behalf of my mother who isn't good with computers.",
    "I'm currently travelling in {country}.",
    "I tried the chat first but it didn't help.",
    "I called yesterday but the line was busy.",
    "I'm writing from my work email.",
    "This is my second message about this.",
    "I'm not very good with technology so please bear with me.",
)

TONE = (
    "This is really urgent!",
    "Please help ASAP.",
    "I'm really frustrated with this.",
    "I need this sorted today.",
    "This is the third time I'm asking!!",
    "Honestly this is ridiculous.",
    "I'm getting quite worried.",
    "URGENT",
    "I would appreciate a quick reply.",
)

CLOSERS = (
    "Thanks.",
    "Thank you.",
    "Thanks in advance.",
    "Many thanks.",
    "Look forward to hearing from you.",
    "Please let me know.",
    "Cheers.",
    "Kind regards.",
    "Can someone call me back?",
    "What should I do?",
)

SIGN_OFFS = (
    "{first_name}",
    "Best, {first_name}",
    "Regards, {first_name} {last_name}",
    "{first_name} {last_name}",
    "Thanks, {first_name}",
)

EMAIL_SENTENCES = (
    "You can reply to {email}.",
    "My email is {email}.",
    "Please contact me at {email}.",
    "Reply to {email} not the old address.",
)

PHONE_SENTENCES = (
    "Call me on {phone}.",
    "My number is {phone}.",
    "Please ring {phone} after 5pm.",
    "You can reach me on {phone}.",
)

CARD_SENTENCES = (
    "The card number is {card_number}.",
    "Card: {card_number}",
    "It's the card {card_number}.",
)

IBAN_SENTENCES = (
    "My IBAN is {iban}.",
    "The account is {iban}.",
    "IBAN: {iban}",
)

SLOT_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "card": (
            "debit card",
            "credit card",
            "Visa card",
            "Mastercard",
            "card",
            "virtual card",
            "contactless card",
        ),
        "merchant": (
            "Amazon",
            "Tesco",
            "Uber",
            "Netflix",
            "Spotify",
            "Shell",
            "IKEA",
            "Booking.com",
            "eBay",
            "Deliveroo",
            "Brightmart",
            "CityFuel",
            "Nordwind Air",
            "GreenGrocer Online",
            "Lumen Gym",
            "PayFlex",
            "Apple",
            "Zalando",
        ),
        "country": (
            "Spain",
            "Portugal",
            "France",
            "Germany",
            "Thailand",
            "the US",
            "Poland",
            "Italy",
            "Turkey",
            "Mexico",
            "India",
            "Nigeria",
        ),
        "bank": (
            "Northbank",
            "Harbour Building Society",
            "Meridian Bank",
            "Coastal Credit Union",
            "my old bank",
            "another bank",
        ),
        "person": (
            "my landlord",
            "my sister",
            "a friend",
            "my son",
            "a builder",
            "my daughter",
            "J. Okafor",
            "M. Kowalski",
            "my tenant",
        ),
        "bill": ("electricity", "gas", "phone", "water", "council tax", "broadband", "gym"),
        "device": ("iPhone", "Android phone", "Samsung phone", "iPad", "Pixel", "tablet"),
        "product": ("Plus", "Premium", "Everyday", "Student", "Graduate", "Platinum", "Basic"),
        "saver": ("Easy Saver", "Instant Access Saver", "Cash ISA", "Regular Saver", "Bonus Saver"),
        "company": (
            "Green Leaf Bakery Ltd",
            "Hartley Plumbing",
            "Bluefin Design",
            "Oakridge Motors",
            "Pixel & Paper",
            "Riverside Cafe",
        ),
        "branch": ("Leeds", "Bristol", "Manchester", "Glasgow", "Cardiff", "Norwich", "York"),
        "first_name": (
            "Maria",
            "James",
            "Aisha",
            "Tom",
            "Priya",
            "Lukas",
            "Chen",
            "Sarah",
            "David",
            "Fatima",
            "Oliver",
            "Emma",
        ),
        "last_name": (
            "Smith",
            "Patel",
            "Nowak",
            "Jones",
            "Garcia",
            "Wright",
            "Khan",
            "Murphy",
            "Rossi",
        ),
        "email_domain": ("gmail.com", "outlook.com", "yahoo.co.uk", "icloud.com", "hotmail.com"),
    }
)

# Tickets that say nothing about the topic; any queue (or none) may have sent them.
GENERIC = (
    "I need help please",
    "please call me back",
    "hello, can someone help me",
    "urgent problem, call me",
    "I have a question",
    "Can you help with my issue from before?",
    "following up on my last message",
)

# Vague tickets that could belong to several queues; the text alone cannot settle the label.
VAGUE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cards": (
            "it still hasn't arrived",
            "it keeps getting declined",
            "there's something wrong with my card",
            "I need a new one",
            "can you block it please",
        ),
        "payments": (
            "money went out twice",
            "it keeps getting declined",
            "where is my money",
            "I want my money back",
            "still pending",
        ),
        "transfers": (
            "where is my money",
            "it still hasn't arrived",
            "money not received",
            "still pending",
        ),
        "fraud": (
            "can you block it please",
            "there's something wrong with my card",
            "I don't recognise this",
            "money missing from my account",
        ),
        "login_access": ("I can't get in", "the app isn't working", "it won't let me in"),
        "accounts": (
            "question about my account",
            "I want to change my account",
            "the app isn't working",
            "it won't let me in",
        ),
        "fees_refunds": ("I want my money back", "why was I charged this", "please refund this"),
        "complaints": ("not happy at all", "why was I charged this", "still waiting for an answer"),
        "statements": ("it still hasn't arrived", "question about my account", "need paperwork"),
        "personal_details": ("I want to change my account", "need to update my details"),
        "loans": ("how much can I borrow", "question about my repayments"),
        "mortgages": ("how much can I borrow", "question about my repayments"),
        "savings": ("what's your best rate", "question about interest"),
        "business_banking": ("question about my company account", "need paperwork"),
    }
)
