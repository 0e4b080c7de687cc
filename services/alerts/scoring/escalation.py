"""Escalation cues: phrases that put the customer relationship at risk.

Any hit forces MOT -3 whatever the rating says.  Categories:

* ``legal``       lawsuits, lawyers, courts           起诉 / 律师函 / "sue you"
* ``regulator``   consumer bodies and regulators      12315 / 消协 / "BBB" / "the FAA"
* ``media``       press / public exposure             媒体曝光 / "going to the press"
* ``safety``      injury and physical danger           受伤 / 烫伤 / "injured" / "unsafe"
* ``food_safety`` food poisoning and contamination    食物中毒 / 拉肚子 / "food poisoning"
* ``churn``       explicit intent to leave / cancel   再也不来了 / 销户 / "cancel my account"

Each pattern is matched on normalised (NFKC, lower-cased) text.  A hit is
discarded when a negation governs it ("I won't sue", 不会投诉到消协,
"no one was injured"); the negation must sit shortly before the cue in the
same clause.  Patterns deliberately require a threat/intent context around
ambiguous nouns: "the lawyer at your branch was helpful" is not a threat,
"I have contacted my lawyer" is.
"""

from __future__ import annotations

import re

_ZH: dict[str, list[str]] = {
    "legal": [
        r"起诉", r"诉讼", r"打官司", r"上法院", r"法院见", r"告上法庭", r"法庭上见", r"告(?:你们|你|他们)(?!诉)",
        r"律师函", r"(?:找|请|联系|咨询|委托|交给)(?:了|过)?(?:我的|专业)?(?:个|一个)?律师",
        r"法律(?:途径|手段|程序)", r"追究.{0,8}(?:法律)?责任", r"仲裁", r"报警",
    ],
    "regulator": [
        r"(?<!\d)1231[56](?!\d)", r"(?<!\d)12345(?!\d)", r"(?<!\d)12326(?!\d)", r"(?<!\d)12358(?!\d)",
        r"消费者协会", r"消协", r"工商局", r"工商部门", r"市场监(?:管|督管理)(?:局|部门|总局)?",
        r"银保监", r"银监会", r"保监会", r"证监会", r"金融监管", r"人民银行", r"工信部", r"通信管理局",
        r"民航局", r"质监局", r"食药监", r"卫生监督", r"卫健委", r"黑猫投诉", r"(?<!\d)315(?!\d)",
        r"投诉到.{0,8}(?:局|部|委|会|协|监管)", r"举报到", r"向.{0,8}(?:局|监管部门|有关部门|相关部门)(?:投诉|举报|反映)",
        r"(?:有关|相关|监管)部门(?:投诉|举报|反映)",
    ],
    "media": [
        r"(?:媒体|网上|网络|微博|新闻|公开|朋友圈|抖音|小红书)曝光", r"曝光(?:你们|他们|这家|此事|这件事|出来|到)",
        r"(?:要|去|会|就)曝光", r"(?:找|联系|告诉|向|爆料给)(?:新闻)?(?<!多)媒体", r"记者", r"电视台", r"报社",
        r"上新闻", r"公之于众", r"让(?:所有人|大家)都知道",
    ],
    "safety": [
        r"受伤", r"烫伤", r"烧伤", r"划伤", r"割伤", r"摔伤", r"砸伤", r"扎伤", r"夹伤", r"擦伤", r"伤到",
        r"触电", r"漏电", r"爆炸", r"起火", r"着火", r"自燃", r"安全隐患", r"不安全", r"有危险", r"很危险",
        r"太危险", r"送医", r"(?:害|导致|弄得|搞得|吃得|害得|结果|直接)[^，,。！!？?]{0,6}(?:住院|进(?:了)?医院|去(?:了)?医院|急诊)",
        r"住院了", r"进了医院", r"送(?:去|进|到)(?:了)?(?:医院|急诊)", r"流血", r"骨折",
    ],
    "food_safety": [
        r"食物中毒", r"中毒了", r"拉肚子", r"腹泻", r"上吐下泻", r"呕吐", r"肚子(?:疼|痛)", r"胃(?:疼|痛)",
        r"闹肚子", r"吃坏(?:了)?肚子", r"吃出(?:了)?(?:一只|一根|个)?(?:虫|蟑螂|苍蝇|头发|异物|钢丝|玻璃|塑料)",
        r"里(?:面)?有(?:只|一只)?(?:虫|蟑螂|苍蝇)",
    ],
    "churn": [
        r"再也不(?:会)?(?:来|买|用|去|点|订|坐|住|选|光顾|找|相信|信)", r"再也不敢", r"再也不会(?:在|到|去|来|用|买|选|光顾|坐|住|点)",
        r"不会再(?:来|买|用|去|光顾|点|订|选|坐|住)", r"销户", r"注销(?:账户|账号|帐户|帐号|卡)?", r"退订", r"解约",
        r"退网", r"携号转网", r"转网", r"换一家", r"换家", r"换别家", r"换(?:个|一个|别的)(?:银行|运营商|平台|商家|店|酒店|航空公司|公司)",
        r"取消(?:了)?(?:会员|订阅|账户|账号|帐户|套餐|合约|服务|自动续费)", r"拉黑", r"永不再", r"再见了您",
        r"最后一次(?:来|买|用|点|在|坐|住)", r"转投", r"卸载",
    ],
}

_EN: dict[str, list[str]] = {
    "legal": [
        r"\b(?:sue|suing)\s+(?:you|your|u|them|the|this|for|over|him|her|it)\b",
        r"\b(?:going to|gonna|will|i'll|i will|plan to|planning to|want to|intend to|considering|thinking of|thinking about)\s+(?:sue|suing)\b",
        r"\bsuing\b", r"\blawsuit\b", r"\bclass action\b", r"\blegal action\b", r"\blegal proceedings\b",
        r"\bsmall claims\b", r"\b(?:take|taking) (?:you|this|them|it) to court\b", r"\bsee you in court\b",
        r"\bmy (?:lawyer|attorney|solicitor|legal team)s?\b",
        r"\b(?:contact|call|consult|hire|get|speak to|speak with|talk to|retain|engage)(?:ed|ing|s)? (?:a|an|my|our)? ?(?:lawyer|attorney|solicitor|legal counsel)s?\b",
        r"\blawyer(?:ing)? up\b", r"\blitigation\b",
    ],
    "regulator": [
        r"\bbbb\b", r"\bbetter business bureau\b", r"\bombudsman\b", r"\bregulators?\b", r"\btrading standards\b",
        r"\battorney general\b", r"\bcfpb\b", r"\bconsumer (?:protection|affairs|financial protection)\b",
        r"\b(?:report|reporting|reported|complain|complaining|complaint|file|filing|filed|contact|contacting|escalate|escalating|write|writing|written|wrote|lodge|lodging|going to|go to)\b[^.!?]{0,30}\b(?:faa|dot|department of transportation|fcc|ftc|ofcom|fca|sec|fda|osha|cfpb|ntsb|tsa)\b",
        r"\bfaa\b[^.!?]{0,20}\b(?:complaint|report)\b",
    ],
    "media": [
        r"\b(?:going to|go to|contact|contacting|call|calling|tell|telling|alert|alerting|inform|informing)(?:ed)? (?:the )?(?:press|media|news|local news|newspapers?|tv stations?|journalists?|reporters?)\b",
        r"\bjournalists?\b", r"\breporters?\b", r"\bgo(?:ing|es)? viral\b", r"\bmake (?:this|it) viral\b",
        r"\btell (?:everyone|everybody|all my (?:friends|followers))\b",
    ],
    "safety": [
        r"\binjur(?:ed|y|ies|ing)\b", r"\b(?:got|get|was|were|been|getting) hurt\b", r"\bhurt (?:me|my|myself|him|her|us|them|his|our)\b",
        r"\bunsafe\b", r"\bdangerous\b", r"\bhazard(?:ous)?\b", r"\bsafety (?:issue|concern|hazard|risk|violation)s?\b",
        r"\b(?:burn(?:ed|t)|scald(?:ed)?) (?:me|my|myself|him|her|us|them)\b", r"\bscalded\b", r"\belectric(?:al)? shock\b",
        r"\b(?:caught|catch|catches|on) fire\b", r"\bexplod(?:ed|ing|es)\b", r"\bhospitali[sz]ed\b",
        r"\b(?:ended up|went|go|taken|rushed|sent|admitted|landed|had to go)(?: me| him| her| us| them)? (?:in|to) (?:the )?(?:hospital|emergency room|er|a&e)\b", r"\bambulance\b", r"\bhospitali[sz]ation\b", r"\bbleeding\b", r"\bslipped and fell\b", r"\bconcussion\b",
        r"\bstitches\b", r"\bbroke (?:my|his|her) (?:arm|leg|wrist|ankle|tooth|nose)\b",
    ],
    "food_safety": [
        r"\bfood poisoning\b", r"\b(?:got|get|gotten|was|were|became|been) (?:violently )?(?:sick|ill) (?:after|from)\b",
        r"\bmade (?:me|us|him|her|them|my \w+|everyone) (?:violently )?(?:sick|ill)\b", r"\bsick after eating\b",
        r"\bvomit(?:ing|ed)?\b", r"\bthrew up\b", r"\bthrowing up\b", r"\bdiarrh?o?ea\b", r"\bsalmonella\b",
        r"\be\.? ?coli\b", r"\blisteria\b", r"\b(?:raw|undercooked) chicken\b",
        r"\bfound (?:a |an |some )?(?:cockroach|roach|rat|mouse|bug|insect|maggot|worm|hair|glass|plastic)e?s? in\b",
    ],
    "churn": [
        r"\bnever (?:fly|flying|flown|use|using|buy|buying|shop|shopping|order|ordering|come|coming|stay|staying|book|booking|go|going|eat|eating|bank|banking|recommend|recommending|choose|choosing|deal|dealing)\b[^.!?]{0,40}\bagain\b",
        r"\bnever again\b",
        r"\b(?:cancel|cancelling|canceling|cancelled|canceled|close|closing|closed|terminate|terminating|terminated|end|ending) (?:my|our) (?:\w+ )?(?:account|subscription|membership|contract|plan|card|policy|line|service)s?\b",
        r"\bswitch(?:ing|ed)? (?:to|over to) (?:another|a different|a new) (?:bank|airline|carrier|provider|company|operator|network|insurer|supplier|hotel|brand|store|shop)\b",
        r"\bswitch(?:ing|ed)? (?:to|over to) (?!(?:the|a|an|my|our|this|that|your|it|later|earlier|online|paperless|e-?statements?|another|different|new)\b)[a-z]+\b(?! (?:flight|seat|room|plan|option|date|time|card))",
        r"\bswitching (?:providers|banks|carriers|airlines)\b",
        r"\btak(?:e|ing) my (?:business|money) elsewhere\b", r"\bmoving my (?:business|money|account)s?\b",
        r"\b(?:find|finding|look|looking|search|searching) (?:for )?(?:a )?(?:new|another|different) (?:bank|provider|airline|carrier|company|hotel|supplier|insurer)\b",
        r"\b(?:you(?:'ve| have) )?lost (?:a|me as a) (?:loyal |long[- ]time |valued )?customer\b", r"\byou(?:'ve| have) lost me\b",
        r"\b(?:won't|will not|wont) be (?:back|returning|flying|using|coming|booking|shopping|ordering|renewing)\b",
        r"\bunsubscribe\b", r"\bport(?:ing)? (?:my|our) numbers? (?:to|out|away|elsewhere)\b", r"\bport(?:ing)? out\b", r"\bdone with (?:you|your|this company|this airline|this bank)\b",
        r"\blast time i(?:'ll| will)? (?:fly|use|buy|order|shop|stay|book)\b",
    ],
}

_ZH_NEGATION = re.compile(r"(?:不会|不想|不用|不必|没必要|不打算|没打算|不至于|没有|没|不要|别|无需|不需要|并未|未|不准备|不再|不|无人|没人)(?:再|去|要|会|向|跟|找|想|任何|什么|过)?$")
_EN_NEGATION = re.compile(
    r"\b(?:won't|wont|will not|wouldn't|would not|not going to|not gonna|no need to|don't|dont|do not|didn't|"
    r"did not|never|no intention (?:of|to)|no plans? to|not planning to|not|no one|nobody|noone|no|wasn't|"
    r"weren't|isn't|without|nothing)\b(?:\s+\S+){0,5}\s*$")
_EN_CONDITIONAL = re.compile(r"\b(?:if|unless|until)\b")  # "if you don't refund me I will sue"
_EN_CLAUSE = re.compile(r"[.!?;,]|\bbut\b|\bhowever\b|\bthough\b")


def _compile(table: dict[str, list[str]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(cat, re.compile("|".join(f"(?:{p})" for p in pats))) for cat, pats in table.items()]


class EscalationDetector:
    """Finds escalation cues; compiled once, ``detect`` is a few regex scans."""

    def __init__(self) -> None:
        self._zh = _compile(_ZH)
        self._en = _compile(_EN)

    def detect(self, norm: str, *, has_cjk: bool, has_latin: bool) -> list[tuple[str, str]]:
        """Return ``[(category, matched text), ...]`` for non-negated cues."""
        hits: list[tuple[str, str]] = []
        if has_cjk:
            for cat, rx in self._zh:
                for m in rx.finditer(norm):
                    before = norm[max(0, m.start() - 6):m.start()]
                    for sep in "，,。！!？?；;":
                        before = before.rpartition(sep)[2]
                    if _ZH_NEGATION.search(before) and not m.group(0).startswith(("再也不", "不会再", "永不")):
                        continue
                    hits.append((cat, m.group(0)))
                    break
        if has_latin:
            for cat, rx in self._en:
                for m in rx.finditer(norm):
                    before = norm[max(0, m.start() - 40):m.start()]
                    parts = _EN_CLAUSE.split(before)
                    before = parts[-1] if parts else before
                    if (_EN_NEGATION.search(before) and not _EN_CONDITIONAL.search(before)
                            and not m.group(0).startswith(("never", "won", "will not"))):
                        continue
                    hits.append((cat, m.group(0)))
                    break
        return hits
