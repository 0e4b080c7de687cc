"""Server-rendered survey pages: bilingual (zh-CN / en), accessible, mobile-first,
self-contained (inline CSS, no external resources), working without JavaScript.

Both languages are on every page — the preferred one first and larger, the
other beneath it — because many customers read both and a link is often
forwarded. Every text part carries its ``lang`` attribute for screen readers.

Partial answers: the form has a "save and finish later" button (a plain form
post, no JavaScript needed); where JavaScript runs, ``static/survey.js`` also
saves each answer as it is given and when the page is left (progressive
enhancement). Reopening the page shows what was saved.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from services.survey.faces import NAMES as FACE_NAMES
from services.survey.faces import face_svg
from services.survey.schemas import LANGS, Issue, Lang, Question, QuestionType, SurveyDefinition, Text

e = html.escape

SCRIPT_PATH = "/s/static/survey.js"
CSAT_LABELS = {
    1: {"zh-CN": "非常不满意", "en": "Very dissatisfied"},
    2: {"zh-CN": "不满意", "en": "Dissatisfied"},
    3: {"zh-CN": "一般", "en": "Neutral"},
    4: {"zh-CN": "满意", "en": "Satisfied"},
    5: {"zh-CN": "非常满意", "en": "Very satisfied"},
}
NPS_ENDS = {
    0: {"zh-CN": "完全不可能", "en": "Not at all likely"},
    10: {"zh-CN": "极有可能", "en": "Extremely likely"},
}
CES_ENDS = {
    1: {"zh-CN": "非常困难", "en": "Very difficult"},
    7: {"zh-CN": "非常容易", "en": "Very easy"},
}
UI = {
    "submit": {"zh-CN": "提交", "en": "Submit"},
    "required": {"zh-CN": "必填", "en": "required"},
    "optional": {"zh-CN": "选填", "en": "optional"},
    "errors": {"zh-CN": "请检查以下问题：", "en": "Please check the following:"},
    "switch": {"zh-CN": "English", "en": "中文"},
    "chars": {"zh-CN": "最多 {n} 个字符", "en": "Up to {n} characters"},
    "stars": {"zh-CN": "{n} 星", "en": "{n} star(s)"},
    "privacy": {
        "zh-CN": "您的回答仅用于改进我们的服务。",
        "en": "Your answers are used only to improve our service.",
    },
    "save": {"zh-CN": "保存，稍后继续", "en": "Save and finish later"},
    "saved": {
        "zh-CN": "已保存。您可以随时通过同一链接回来继续填写。",
        "en": "Saved. Come back through the same link any time to finish.",
    },
}

CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 -apple-system,BlinkMacSystemFont,"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",Roboto,Arial,sans-serif;color:#1a1a1a;background:#f4f5f7}
main{max-width:640px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:12px;padding:20px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{font-size:1.4rem;margin:0 0 4px}
.alt{display:block;color:#4a4f57;font-size:.9em;font-weight:normal}
.top{text-align:right;margin:0 0 8px}
a{color:#0b57d0}
fieldset{border:0;margin:24px 0;padding:0;min-width:0}
legend,.qlabel{font-weight:600;padding:0;margin-bottom:8px;display:block}
.hint{color:#4a4f57;font-size:.9em;margin:0 0 8px}
.scale{display:flex;flex-wrap:wrap;gap:6px}
.opt{position:relative}
.opt input{position:absolute;opacity:0;width:1px;height:1px}
.opt label{display:flex;flex-direction:column;align-items:center;justify-content:center;min-width:44px;min-height:44px;padding:6px 8px;border:2px solid #c7cbd1;border-radius:10px;cursor:pointer;background:#fff;text-align:center;font-size:.8rem;line-height:1.2}
.opt .face{font-size:1.9rem;line-height:1.1}
.opt .face svg{width:36px;height:36px;display:block}
.choice{display:flex;flex-direction:column;gap:6px}
.choice .opt label{flex-direction:row;justify-content:flex-start;gap:8px;text-align:left;font-size:1rem;padding:10px 12px}
.choice .opt label .alt{display:inline;margin-left:6px}
.ces{flex-wrap:nowrap;gap:4px}
.ces .opt{flex:1 1 0;min-width:0}
.ces .opt label{min-width:0;padding:6px 2px}
.notice{border:2px solid #188038;border-radius:10px;padding:12px;margin:16px 0;background:#e6f4ea}
button.secondary{background:#e3e7ee;color:#1a1a1a}
.opt .num{font-size:1.05rem;font-weight:600}
.mot{flex-wrap:nowrap;gap:4px}
.mot .opt{flex:1 1 0;min-width:0}
.mot .opt label{min-width:0;padding:6px 2px;font-size:.72rem}
.nps .opt{flex:1 1 0;min-width:44px}
.opt input:checked+label{border-color:#0b57d0;background:#e8f0fe;box-shadow:inset 0 0 0 1px #0b57d0}
.opt input:focus-visible+label{outline:3px solid #f9ab00;outline-offset:2px}
.ends{display:flex;justify-content:space-between;color:#4a4f57;font-size:.8rem;margin-top:4px;gap:8px}
textarea{width:100%;min-height:7em;font:inherit;padding:10px;border:2px solid #c7cbd1;border-radius:10px}
textarea:focus-visible{outline:3px solid #f9ab00;outline-offset:2px}
.error{color:#b3261e;font-weight:600;margin:6px 0 0}
.invalid .scale label,.invalid textarea{border-color:#b3261e}
.summary{border:2px solid #b3261e;border-radius:10px;padding:12px;margin:16px 0;background:#fdecea}
.summary ul{margin:4px 0 0;padding-left:20px}
button{font:inherit;font-weight:600;width:100%;min-height:48px;border:0;border-radius:10px;background:#0b57d0;color:#fff;cursor:pointer;margin-top:8px}
button:focus-visible{outline:3px solid #f9ab00;outline-offset:2px}
.foot{color:#4a4f57;font-size:.8rem;margin-top:16px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (prefers-color-scheme:dark){body{background:#121316;color:#e6e6e6}.card{background:#1e1f23}.opt label,textarea{background:#1e1f23;color:#e6e6e6;border-color:#5f6368}.alt,.hint,.ends,.foot{color:#b0b4ba}.opt input:checked+label{background:#1c2b4a}a{color:#8ab4f8}}
"""


def lang_order(preferred: str | None) -> tuple[Lang, Lang]:
    """Preferred language first: English when asked for, else Chinese."""
    if preferred and preferred.lower().startswith("en"):
        return ("en", "zh-CN")
    return ("zh-CN", "en")


def pick_language(query_lang: str | None, request_lang: str | None, accept_language: str | None) -> Lang:
    for candidate in (query_lang, request_lang):
        if candidate:
            return lang_order(candidate)[0]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


def _both(text: Text | Mapping[str, str], lang: Lang, *, tag: str = "span", fmt: Mapping[str, object] | None = None,
          after: str = "") -> str:
    """Primary language (then ``after``, markup), then the other one (when different) as a secondary line."""
    first, second = lang, lang_order("zh" if lang == "en" else "en")[0]

    def get(code: Lang) -> str:
        raw = text.get(code) if isinstance(text, Text) else text[code]
        return raw.format(**fmt) if fmt else raw

    main_text, alt_text = get(first), get(second)
    out = f'<{tag} lang="{first}">{e(main_text)}</{tag}>{after}'
    if alt_text and alt_text != main_text:
        out += f'<span class="alt" lang="{second}">{e(alt_text)}</span>'
    return out


def _page(title: str, body: str, lang: Lang, *, script: bool = False) -> str:
    head_script = f'<script src="{SCRIPT_PATH}" defer></script>' if script else ""
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{e(title)}</title><style>{CSS}</style>{head_script}</head>"
        f'<body><main><div class="card">{body}</div></main></body></html>'
    )


def _option(q: Question, v: object, value: object, inner: str, extra_attrs: str) -> str:
    checked = " checked" if str(value) == str(v) else ""
    req = " required" if q.required else ""
    iid = f"q-{q.id}-{v}"
    return (f'<div class="opt"><input type="radio" id="{e(iid)}" name="q.{e(q.id)}" value="{e(str(v))}"{checked}{req}'
            f'{extra_attrs}><label for="{e(iid)}">{inner}</label></div>')


def _ends(labels: dict[int, dict[str, str]], lang: Lang) -> str:
    (low, low_text), (high, high_text) = sorted(labels.items())
    return (f'<div class="ends" aria-hidden="true"><span lang="{lang}">{low} = {e(low_text[lang])}</span>'
            f'<span lang="{lang}">{high} = {e(high_text[lang])}</span></div>')


def _choices(q: Question, lang: Lang, value: object, extra_attrs: str) -> str:
    if q.type is QuestionType.CHOICE:
        options = "".join(_option(q, o.id, value, _both(o.label, lang), extra_attrs) for o in q.options or ())
        return f'<div class="scale choice">{options}</div>'
    low, high = q.type.range
    options = []
    for v in range(low, high + 1):
        if q.type is QuestionType.MOT:
            inner = (f'<span class="face" aria-hidden="true">{face_svg(v)}</span>'
                     f'<span lang="{lang}">{e(FACE_NAMES[v][lang])}</span>'
                     f'<span class="sr">{v:+d}</span>')
        elif q.type is QuestionType.CSAT:
            names = CSAT_LABELS[v]
            inner = f'<span class="num">{v}</span><span lang="{lang}">{e(names[lang])}</span>'
        elif q.type is QuestionType.STARS:
            inner = (f'<span class="face" aria-hidden="true">{"★" * v}</span>'
                     f'<span lang="{lang}">{e(UI["stars"][lang].format(n=v))}</span>')
        else:  # nps, ces
            ends = NPS_ENDS if q.type is QuestionType.NPS else CES_ENDS
            inner = f'<span class="num">{v}</span>'
            if v in ends:
                inner += f'<span class="sr" lang="{lang}">{e(ends[v][lang])}</span>'
        options.append(_option(q, v, value, inner, extra_attrs))
    ends = ""
    if q.type is QuestionType.NPS:
        ends = _ends(NPS_ENDS, lang)
    elif q.type is QuestionType.CES:
        ends = _ends(CES_ENDS, lang)
    return f'<div class="scale {q.type.value}">{"".join(options)}</div>{ends}'


def _question(q: Question, lang: Lang, value: object, issue: Issue | None) -> str:
    err_id, hint_id = f"err-{q.id}", f"hint-{q.id}"
    ids = ([hint_id] if q.help or q.type is QuestionType.TEXT else []) + ([err_id] if issue else [])
    described = f' aria-describedby="{" ".join(ids)}"' if ids else ""
    invalid = ' aria-invalid="true"' if issue else ""
    marker = (f' <span class="sr" lang="{lang}">({e(UI["required"][lang])})</span><span aria-hidden="true"> *</span>'
              if q.required else "")
    error = (f'<p class="error" id="{err_id}"><span lang="{lang}">{e(issue.zh if lang == "zh-CN" else issue.en)}</span>'
             f'</p>' if issue else "")
    cls = ' class="invalid"' if issue else ""
    if q.type is QuestionType.TEXT:
        hint_text = (_both(q.help, lang) + " · " if q.help else "") + _both(UI["chars"], lang, fmt={"n": q.max_length})
        return (
            f'<div{cls} style="margin:24px 0"><label class="qlabel" for="q-{q.id}">{_both(q.label, lang, after=marker)}</label>'
            f'<p class="hint" id="{hint_id}">{hint_text}</p>'
            f'<textarea id="q-{q.id}" name="q.{e(q.id)}" maxlength="{q.max_length}"'
            f'{" required" if q.required else ""}{described}{invalid}>{e(str(value or ""))}</textarea>{error}</div>'
        )
    hint = f'<p class="hint" id="{hint_id}">{_both(q.help, lang)}</p>' if q.help else ""
    return (
        f'<fieldset{cls}{described}>'
        f'<legend>{_both(q.label, lang, after=marker)}</legend>{hint}'
        f'{_choices(q, lang, value, invalid)}{error}</fieldset>'
    )


def _first_input(survey: SurveyDefinition, question_id: str) -> str:
    """The id of the element a summary entry links to (the first option, or the text area)."""
    q = survey.question(question_id)
    if q.type is QuestionType.TEXT:
        return f"q-{q.id}"
    first = q.options[0].id if q.type is QuestionType.CHOICE else q.type.range[0]
    return f"q-{q.id}-{first}"


def render_form(
    survey: SurveyDefinition,
    *,
    lang: Lang,
    action: str,
    switch_url: str,
    token: str | None,
    submission_id: str,
    values: Mapping[str, object] | None = None,
    issues: Sequence[Issue] = (),
    version: int | None = None,
    draft_action: str | None = None,
    saved: bool = False,
) -> str:
    values = values or {}
    by_question = {i.question_id: i for i in issues if i.question_id}
    summary = ""
    if issues:
        items = "".join(
            f'<li><a href="#{e(_first_input(survey, i.question_id))}">'
            f'{e(survey.question(i.question_id).label.get(lang))}</a>: <span lang="{lang}">{e(i.zh if lang == "zh-CN" else i.en)}</span></li>'
            if i.question_id and survey.question(i.question_id)
            else f'<li lang="{lang}">{e(i.zh if lang == "zh-CN" else i.en)}</li>'
            for i in issues
        )
        summary = (f'<div class="summary" role="alert" tabindex="-1"><strong>{_both(UI["errors"], lang)}</strong>'
                   f"<ul>{items}</ul></div>")
    notice = f'<p class="notice" role="status">{_both(UI["saved"], lang)}</p>' if saved else ""
    hidden = f'<input type="hidden" name="lang" value="{lang}">'
    hidden += f'<input type="hidden" name="submission_id" value="{e(submission_id)}">'
    if version is not None:
        hidden += f'<input type="hidden" name="v" value="{version}">'
    if token:
        hidden += f'<input type="hidden" name="t" value="{e(token)}">'
    other: Lang = "en" if lang == "zh-CN" else "zh-CN"
    save = ""
    if draft_action:
        save = (f'<button type="submit" class="secondary" formaction="{e(draft_action)}" formnovalidate>'
                f'{e(UI["save"][lang])} / {e(UI["save"][other])}</button>')
    draft_attr = f' data-draft="{e(draft_action)}"' if draft_action else ""
    body = (
        f'<p class="top"><a href="{e(switch_url)}" lang="{other}">{UI["switch"][lang]}</a></p>'
        f"<h1>{_both(survey.title, lang)}</h1>"
        + (f'<p class="hint">{_both(survey.intro, lang)}</p>' if survey.intro else "")
        + notice
        + summary
        + f'<form method="post" action="{e(action)}" accept-charset="utf-8" novalidate{draft_attr}>{hidden}'
        + "".join(_question(q, lang, values.get(q.id), by_question.get(q.id)) for q in survey.questions)
        + f'<button type="submit">{e(UI["submit"][lang])} / {e(UI["submit"][other])}</button>'
        + save
        + f'</form><p class="foot">{_both(UI["privacy"], lang)}</p>'
    )
    return _page(survey.title.get(lang), body, lang, script=draft_action is not None)


MESSAGES: dict[str, dict[str, dict[str, str]]] = {
    "thanks": {
        "title": {"zh-CN": "感谢您的反馈！", "en": "Thank you for your feedback!"},
        "body": {"zh-CN": "我们已收到您的回答。", "en": "We have received your answers."},
    },
    "already_answered": {
        "title": {"zh-CN": "您已回答过此问卷", "en": "You have already answered this survey"},
        "body": {"zh-CN": "每个链接只能提交一次，感谢您的参与。", "en": "Each link can be answered once. Thank you for taking part."},
    },
    "expired": {
        "title": {"zh-CN": "链接已过期", "en": "This link has expired"},
        "body": {"zh-CN": "请联系我们获取新的链接。", "en": "Please contact us for a new link."},
    },
    "invalid_link": {
        "title": {"zh-CN": "链接无效", "en": "This link is not valid"},
        "body": {"zh-CN": "请使用邮件中的完整链接。", "en": "Please use the complete link from your email."},
    },
    "link_required": {
        "title": {"zh-CN": "需要个人链接", "en": "A personal link is needed"},
        "body": {"zh-CN": "此问卷只能通过我们发送给您的链接填写。", "en": "This survey can only be answered from the link we sent you."},
    },
    "not_found": {
        "title": {"zh-CN": "找不到问卷", "en": "Survey not found"},
        "body": {"zh-CN": "请检查链接是否正确。", "en": "Please check that the link is correct."},
    },
    "unavailable": {
        "title": {"zh-CN": "暂时无法提交", "en": "We could not save your answers"},
        "body": {"zh-CN": "请稍后再试。", "en": "Please try again in a moment."},
    },
    "too_many": {
        "title": {"zh-CN": "请求过于频繁", "en": "Too many requests"},
        "body": {"zh-CN": "请稍等片刻再试。", "en": "Please wait a moment and try again."},
    },
    "too_large": {
        "title": {"zh-CN": "内容过长", "en": "Too much text"},
        "body": {"zh-CN": "请缩短您的回答后再提交。", "en": "Please shorten your answers and submit again."},
    },
    "unsubscribe": {
        "title": {"zh-CN": "退订问卷邀请", "en": "Unsubscribe from survey invitations"},
        "body": {"zh-CN": "确认后，我们将不再向 {address} 发送任何问卷邀请。",
                 "en": "Once you confirm, we will send no more survey invitations to {address}."},
    },
    "unsubscribed": {
        "title": {"zh-CN": "您已退订", "en": "You are unsubscribed"},
        "body": {"zh-CN": "我们不会再向 {address} 发送问卷邀请。", "en": "We will send no more survey invitations to {address}."},
    },
}

UNSUBSCRIBE_BUTTON = {"zh-CN": "确认退订", "en": "Unsubscribe"}


def render_message(kind: str, lang: Lang, *, survey: SurveyDefinition | None = None,
                   fmt: Mapping[str, object] | None = None, form_action: str | None = None) -> str:
    """A bilingual message page; ``form_action``: with a confirm button posting there (unsubscribe)."""
    msg = MESSAGES[kind]
    body_text: Text | Mapping[str, str] = msg["body"]
    if kind == "thanks" and survey is not None and survey.thanks is not None:
        body_text = survey.thanks
    body = f'<h1 role="status">{_both(msg["title"], lang)}</h1><p>{_both(body_text, lang, fmt=fmt)}</p>'
    if form_action:
        other: Lang = "en" if lang == "zh-CN" else "zh-CN"
        body += (f'<form method="post" action="{e(form_action)}"><input type="hidden" name="confirm" value="1">'
                 f'<button type="submit">{e(UNSUBSCRIBE_BUTTON[lang])} / {e(UNSUBSCRIBE_BUTTON[other])}</button></form>')
    return _page(msg["title"][lang], body, lang)


__all__ = ["LANGS", "lang_order", "pick_language", "render_form", "render_message"]
