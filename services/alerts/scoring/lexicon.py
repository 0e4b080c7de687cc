"""Curated, domain-independent sentiment lexicons for Chinese and English.

Everything in this module is hand-written for customer feedback in general
(service, product, delivery, billing, staff, waiting, hygiene, reliability),
not mined from the development data.  Weights are on a -3..+3 scale: roughly
"how bad / good would a service manager read this word in a complaint".

The English side is completed at load time by a filtered copy of the VADER
lexicon (MIT, see PROVENANCE.md); entries below override VADER.

Token kinds:
  * sentiment terms: float weight
  * ``NEG``: negators (flip the next sentiment term)
  * ``("INT", k)``: intensifier / downtoner multiplying the next term by k
  * ``CONTRAST``: "but"-like markers (earlier text is down-weighted)
  * ``CONCESSIVE``: "although"-like markers (their own clause is down-weighted)
  * ``0.0`` entries exist only to block a wrong shorter match (longest match
    wins), e.g. 好像 "seems" must not count as 好 "good".
"""

from __future__ import annotations

NEG = "NEG"
NEG_STRONG = "NEG_STRONG"
CONTRAST = "CONTRAST"
CONCESSIVE = "CONCESSIVE"
GOOD_OR_INT = "GOOD_OR_INT"  # zh 好 / en "pretty": intensifier when a sentiment term follows


def _terms(spec: str, weight: float) -> dict[str, float]:
    return {t: weight for t in spec.split()}


# --------------------------------------------------------------------------
# Chinese
# --------------------------------------------------------------------------
ZH_TERMS: dict[str, float] = {}
ZH_TERMS.update(_terms(
    "垃圾 骗子 黑心 奸商 无良 坑爹 假货 态度恶劣 恶劣至极 有虫 蟑螂 老鼠 盗刷 辱骂 诈骗 欺诈 "
    "太坑 极差 超级差 差到极点 最差 恶心死 烂透 糟透 霸王条款 乱收费 别买 千万别 千万不要 拉黑", -3.0))
ZH_TERMS.update(_terms(
    "差劲 恶心 上当 受骗 被骗 欺骗 忽悠 坑人 变质 过期 发霉 馊 恶劣 差评 气愤 愤怒 火大 "
    "崩溃 心累 失望 后悔 不满 不满意 糟糕 劣质 残次 次品 山寨 翻新 泄露 歧视 刁难 骚扰 "
    "不推荐 慎买 慎重购买 不要买 白花钱 冤枉钱 不值 不值得 名不副实 货不对板 虚假 假的 "
    "死机 闪退 黑屏 漏水 漏电 冒烟 烂 太差 很差 真差 好差 特差 质量差 服务差 态度差 "
    "无语 醉了 呵呵 坑 不靠谱 不负责 不专业 不耐烦 冷漠 傲慢 粗鲁 敷衍 推诿 扯皮 踢皮球 "
    "欺负 恐吓 威胁 强制 强行 捆绑 套路 乱扣 多扣 扣错 多收 乱收 吞钱 难吃 难喝 难用 难闻 "
    "难看 臭 异味 刺鼻 脏 不干净 不卫生 头发 异物 一星 零分 再也不 投诉 举报 坑钱", -2.0))
ZH_TERMS.update(_terms(
    "差 坏了 坏的 损坏 破损 破了 碎了 故障 失灵 卡顿 卡死 掉线 断网 信号差 没信号 耗电 发烫 "
    "噪音 划痕 瑕疵 掉色 褪色 起球 开线 脱线 变形 缺陷 毛病 缺点 错误 出错 弄错 搞错 送错 发错 "
    "算错 错发 漏发 少发 丢失 弄丢 丢件 延误 延迟 超时 迟到 拖延 迟迟 一直没 至今 还没 没收到 "
    "未收到 没有收到 没到 收不到 联系不上 打不通 没人接 没人管 没人理 不理 不回 不回复 不处理 不解决 "
    "不给退 拒绝 拒收 冻结 被扣 扣费 退货 退款 退钱 退订 维权 纠纷 气死 生气 郁闷 烦 烦人 闹心 "
    "不爽 窝火 无奈 遗憾 可惜 麻烦 折腾 繁琐 费劲 不方便 不舒服 不好用 不好吃 不新鲜 不行 "
    "不怎么样 不尽人意 不尽如人意 差强人意 不符 不一致 与描述不符 不如 不够 不足 不合适 "
    "不合理 不公平 不透明 不清楚 不明白 不稳定 不准 不准时 不及时 不到位 不给力 失败 混乱 "
    "乱七八糟 简陋 破旧 陈旧 老旧 拥挤 嘈杂 吵 隔音差 潮湿 霉味 油腻 太咸 咸死 太油 太辣 "
    "凉了 冷了 冰凉 太慢 好慢 很慢 特慢 慢死 等半天 等了半天 排队 半天 太贵 好贵 很贵 偏贵 "
    "贵了 性价比低 缩水 少了 缺斤少两 短斤缺两 缺少 漏了 吐槽 抱怨 坑了 水货 二手 发热 "
    "疑问 失误 失职 过分 离谱 荒唐 可笑 扯淡 无法 没法 没办法 白等 白跑 亏了 亏损 断线 老是断 经常断 打不开 "
    "解决不了 处理不了 乱糟糟 莫名其妙 说不清楚 不清不楚 不了了之", -1.3))
ZH_TERMS.update(_terms(
    "慢 贵 一般 一般般 凑合 勉强 普通 马马虎虎 还凑合 将就 有待 欠佳 有待提高 稍差 偏咸 偏油 "
    "偏淡 淡 硬 咸 辣 腻 小 少 薄 旧 等了 晚了 晚点 问题 手续费 推销 广告", -0.6))

ZH_TERMS.update(_terms(
    "完美 无可挑剔 惊喜 超赞 太棒 棒极了 好极了 超级好 超棒 特别好 非常好 非常满意 特别满意 "
    "超级满意 物超所值 五星 满分 赞赞 一流 顶级 神速 感动 无敌 没得说 没话说 好评如潮 强烈推荐 "
    "必须好评 必须五星 贴心 宾至如归", 2.6))
ZH_TERMS.update(_terms(
    "好 很好 挺好 真好 不错 很不错 挺不错 还不错 蛮好 棒 很棒 挺棒 赞 点赞 好评 给力 满意 "
    "喜欢 推荐 值得 值得购买 划算 实惠 超值 物美价廉 性价比高 好吃 好喝 好用 好看 好闻 美味 "
    "可口 鲜美 新鲜 正宗 地道 精致 漂亮 美观 大气 优秀 出色 优质 专业 热情 周到 耐心 细心 "
    "用心 负责 靠谱 诚信 守信 舒服 舒适 干净 整洁 卫生 安静 方便 便捷 快捷 及时 准时 迅速 "
    "高效 流畅 清晰 稳定 耐用 结实 正品 放心 安心 省心 开心 高兴 愉快 感谢 谢谢 多谢 辛苦了 "
    "回购 还会再来 会再来 下次还 还会光顾 一直在用 信赖 信任 到位 解决了 已解决 帮忙 帮助 "
    "友好 礼貌 客气 温馨 完好 无损 量足 分量足 量大 足量 满分 好评 表扬 优惠 便宜 快 很快 "
    "挺快 超快 好快 蛮快 速度快 效率高 值 没问题 没毛病 不愧 顺利 顺畅 详细 仔细 认真 细致 清楚 "
    "快速 合理 透明 公道 良心 满足 周全 妥当 妥善 完美解决 圆满", 1.5))
ZH_TERMS.update(_terms("还行 还可以 可以 还好 尚可 能用 ok 凑活", 0.4))

# Cross-industry service vocabulary (banks, telecoms, hotels, hospitals,
# retail, airlines): how complaints about queues, billing, run-arounds and
# broken promises are phrased, and the matching praise.  Hand-written, not
# mined from the development data.
ZH_TERMS.update(_terms(
    "推三阻四 爱答不理 爱理不理 踢来踢去 互相推诿 没个说法 不给说法 照骗 被套路 乱扣费 乱扣钱 "
    "霸王 强制消费 强买强卖 少得可怜 忍无可忍 欺人太甚 态度极差 服务极差", -2.0))
ZH_TERMS.update(_terms(
    "打发 占线 转来转去 来回跑 跑了好几趟 白跑一趟 三天两头 反反复复 拖了 一拖再拖 一推再推 "
    "超售 被取消 丢了 找不到了 不必要 乱开 过度医疗 网速慢 网络差 卡得要命 违约金 阻拦 设卡 "
    "凶 吼 训斥 冷淡 爱搭不理 无人问津 没人问 没人通知 不通知 不告知 不提醒 隐瞒 误导 "
    "多扣 重复扣费 扣了两次 扣两次 收了两次 被扣款 扣款失败 转账失败 登录不上 登不上 进不去 "
    "疼 痛 等太久 等很久 等了很久 等了好久 等了一个 等了两个 等了三个 排了 排长队 "
    "漫长 太久 很久 效率低 效率太低 不作为 不管不顾 没有下文 石沉大海 遥遥无期", -1.3))
ZH_TERMS.update(_terms("改签 补差价 收费 扣款 账单 违约 时有时无 冻得 发抖", -0.6))
ZH_TERMS.update(_terms(
    "答非所问 一号难求 没有答复 不给答复 没有回复 没有回音 打不进去 转不过去 没赶上 赶不上 回不了家 "
    "耽误 耽误事 耽误时间 浪费时间 白白浪费 复杂 要命 黄牛 不通知 没通知 没提醒 被降 吞卡 停机", -1.3))
ZH_TERMS.update(_terms("安排 安排了 排名 排行 排骨 排气 小时 小姐 小哥 小孩 小朋友 小区 小票 小费 小吃 小程序", 0.0))
ZH_TERMS.update(_terms(
    "宾至如归 无微不至 雪中送炭 感激不尽 秒到账 准点 正点 提前到达 一次就解决 一次性解决", 2.6))
ZH_TERMS.update(_terms(
    "到账 退回来 补偿 赔付 平稳 整齐 达标 丰富 搞定 省了 省钱 暖心 体贴 亲切 和蔼 "
    "讲解 讲得很清楚 解释清楚 耐心解答 主动 跟进 回访 回电 处理得很好 处理及时 "
    "效率很高 办好了 办完了 办得很快", 1.0))
ZH_TERMS.update(_terms("退款到账 退款成功 已退款 已经退款 退货很顺利 退款很快 退得很快", 1.2))

# blockers: compounds whose parts would otherwise mislead
ZH_TERMS.update(_terms(
    "好像 好几 好多 好些 好久不见 只好 正好 刚好 恰好 好友 好处 爱好 好奇 友好度 最好是 "
    "快递 快要 尽快 赶快 快点 快到 快来 差不多 差点 差价 差额 差旅 出差 时差 相差 差异 "
    "问题是 没问题吗 不客气 不久 不断 不仅 不但 不管 不论 不少 不用说 不得不 不一定 "
    "无论 无线 无需 无限 未来 没想到 没事 非得 好不好 好吗 是不是 对不对 行不行 "
    "可以吗 能不能 不会吧 一般来说 一般都 一般是 投诉电话 退货地址 退款流程 "
    "高兴地 谢谢你们 满意度", 0.0))
ZH_TERMS.update({"好久": -0.6, "好慢": -1.6, "好差": -2.0})

ZH_NEGATORS: dict[str, str] = {}
ZH_NEGATORS.update({t: NEG for t in "不 没 没有 无 未 别 非 并不 并非 并没有 不是 不太 不怎么 不算 算不上 谈不上 称不上 从不 从没 从未 毫无 不大".split()})
ZH_NEGATORS.update({t: NEG_STRONG for t in "不会再 再也没 一点也不 一点都不 一点儿也不 根本不 根本没 完全不 绝对不 绝不 决不 丝毫不 毫不 压根不 压根没".split()})

ZH_MODIFIERS: dict[str, float] = {
    "很": 1.3, "非常": 1.6, "特别": 1.5, "超级": 1.7, "超": 1.5, "太": 1.5, "十分": 1.5, "极": 1.7,
    "极其": 1.8, "极度": 1.8, "真": 1.3, "真的": 1.3, "最": 1.8, "巨": 1.6, "贼": 1.5, "挺": 1.1,
    "蛮": 1.1, "相当": 1.4, "更": 1.2, "更加": 1.3, "越来越": 1.3, "实在": 1.4, "简直": 1.6,
    "完全": 1.4, "严重": 1.6, "太过": 1.5, "格外": 1.4, "异常": 1.5, "特": 1.4, "那么": 1.0,
    "这么": 1.2, "如此": 1.3, "够": 1.0, "是": 1.0, "也": 1.0, "都": 1.0, "很是": 1.3,
    "有点": 0.6, "有点儿": 0.6, "有些": 0.6, "有一点": 0.6, "稍微": 0.5, "稍": 0.5, "略": 0.5,
    "略微": 0.5, "比较": 0.8, "还算": 0.7, "还": 0.9, "偏": 0.8,
}
ZH_CONTRAST = "但是 但 可是 不过 然而 却 只是 遗憾的是 问题是 唯一 美中不足 无奈的是".split()
ZH_CONCESSIVE = "虽然 虽说 虽 尽管 即使 哪怕".split()

# --------------------------------------------------------------------------
# English (on top of filtered VADER)
# --------------------------------------------------------------------------
EN_TERMS: dict[str, float] = {}
EN_TERMS.update(_terms(
    "scam scammed fraud fraudulent ripoff rip-off worst disgusting appalling atrocious horrendous "
    "abysmal unacceptable incompetent incompetence liars lying cheated robbed theft unprofessional", -3.0))
EN_TERMS.update(_terms(
    "terrible horrible awful pathetic useless unhelpful rude disrespectful dismissive outrageous "
    "ridiculous disappointed disappointing disappointment frustrated frustrating furious angry "
    "annoyed annoying upset disgusted broken damaged defective faulty dirty filthy moldy mouldy "
    "stale expired overcharged overcharging misleading mislead misled deceptive hidden "
    "nightmare fiasco mess joke fail failed failure failing sucks sucked worse poor poorly "
    "smh wtf ugh ugly inedible cold-food uncomfortable cramped smelly stinks stank rip off "
    "waste wasted wasting lousy shoddy sloppy careless clueless ignored ignoring ignore "
    "hung unreliable laggy buggy crashed crashing crashes outage outages glitch glitches", -2.0))
EN_TERMS.update(_terms(
    "delay delayed delays cancelled canceled cancellation cancellations stuck stranded late "
    "missed missing lost lose losing slow slowest waiting waited wait hold queue dropped "
    "disconnected declined denied refused charged fee fees refund refunds complaint complain "
    "complained complaining problem problems issue issues error errors wrong incorrect "
    "confusing confused inconvenience inconvenienced hassle trouble nobody unable "
    "rebooked rebook diverted overbooked oversold lacking lack noisy loud expensive "
    "overpriced pricey unanswered unresolved unfortunately sadly apparently supposedly", -1.0))
EN_TERMS.update(_terms("still hours hrs mins minutes forever", -0.4))
EN_TERMS.update(_terms(
    "amazing awesome excellent outstanding fantastic wonderful superb brilliant exceptional "
    "phenomenal incredible impeccable flawless perfect perfectly delighted delightful thrilled "
    "loved love best superstar lifesaver kudos bravo stellar", 2.6))
EN_TERMS.update(_terms(
    "great good nice helpful friendly polite courteous professional efficient quick quickly "
    "fast prompt promptly smooth smoothly easy comfortable clean fresh tasty delicious "
    "reliable recommend recommended happy pleased satisfied glad thanks thank thx ty "
    "appreciate appreciated grateful resolved fixed solved sorted worth well-done "
    "impressed impressive enjoy enjoyed pleasant lovely beautiful cool ontime on-time "
    "responsive knowledgeable patient attentive caring generous seamless painless", 1.6))
EN_TERMS.update(_terms("ok okay fine decent alright acceptable adequate reasonable", 0.5))
EN_PHRASES: dict[str, float] = {
    "no problem": 1.0, "no problems": 1.0, "no worries": 1.0, "no issues": 1.0, "no issue": 1.0,
    "no complaints": 1.5, "no complaint": 1.5, "not a problem": 1.0, "well done": 2.0,
    "on time": 1.2, "on hold": -1.5, "no one": -1.2, "no answer": -1.5, "no response": -1.5,
    "no reply": -1.5, "no help": -2.0, "waste of time": -2.5, "waste of money": -2.5,
    "customer service": 0.0, "customer care": 0.0, "customer support": 0.0, "let down": -2.0,
    "fed up": -2.5, "sick of": -2.5, "tired of": -2.0, "rip off": -2.5, "never again": -2.5,
    "thank you": 1.6, "thanks for nothing": -2.5, "thank you for nothing": -2.5, "thanks a lot": 1.0, "good luck": -0.5, "what a joke": -2.5,
    "too long": -1.5, "so long": -1.2, "took forever": -2.0, "takes forever": -2.0,
    "still waiting": -2.0, "still no": -1.5, "still not": -1.5, "not happy": -2.0,
    "not impressed": -2.0, "not acceptable": -2.0, "not working": -2.0, "doesn't work": -2.0,
    "does not work": -2.0, "didn't work": -2.0, "stopped working": -2.0, "hung up": -2.0,
    "charged twice": -2.5, "double charged": -2.5, "above and beyond": 2.8,
    "went out of her way": 2.5, "went out of his way": 2.5, "went out of their way": 2.5,
    "highly recommend": 2.6, "five stars": 2.2, "5 stars": 2.2, "one star": -2.5, "1 star": -2.5,
    "zero stars": -3.0, "0 stars": -3.0, "last time": -1.0, "at all": 0.0,
    "as usual": -0.5, "no way": -1.0, "not bad": 1.0, "can't complain": 1.5,
    "cannot complain": 1.5, "well worth": 2.0, "not worth": -2.0, "worth it": 1.5,
    "first class": 0.0, "business class": 0.0, "like it": 1.5, "i like": 1.5, "we like": 1.5,
    "love it": 2.6, "loved it": 2.6, "would recommend": 2.0, "will recommend": 2.0,
}

# Cross-industry service vocabulary (see the Chinese block above).
EN_TERMS.update(_terms(
    "runaround shrugged vanished disappeared bumped stained stains sticky smelled smells stinky "
    "froze frozen locked drops dropping unreturned argued argumentative condescending patronising "
    "patronizing hostile indifferent neglected neglect overdue backlog", -1.5))
EN_TERMS.update(_terms(
    "kind spotless tidy thorough straightforward listened caring compassionate reassuring "
    "explained accommodating welcoming hospitable solid seamless hassle-free", 1.4))
EN_TERMS.update(_terms("quiet simple", 0.6))
EN_TERMS.update(_terms("scratch scratches scratched dent dented fuss pressure pushy upsell upselling", -1.0))
EN_PHRASES.update({
    "called back": 0.8, "call back": 0.6, "call me back": 0.6, "got back to me": 0.8, "return calls": 0.8,
    "returned my call": 1.0, "returned my calls": 1.0, "showed up": 0.6, "turned up": 0.6,
    "takes ownership": 1.0, "take ownership": 1.0, "followed up": 1.2, "follow up": 0.4,
    "no explanation": -2.0, "zero explanation": -2.0, "without explanation": -1.8,
    "no signal": -2.0, "no service": -1.5, "no show": -1.5, "no-show": -1.5, "no refund": -2.0,
    "paper thin": -1.8, "thin walls": -1.8, "fell apart": -2.0, "falling apart": -2.0,
    "ran out": -1.0, "run around": -1.8, "passed around": -1.8, "copy paste": -1.5,
    "still hasn't": -1.8, "still haven't": -1.8, "still hasnt": -1.8, "still havent": -1.8,
    "still isn't": -1.5, "still not": -1.5, "still nothing": -2.0, "hasn't even": -1.5,
    "as promised": 1.2, "promised": -0.6, "was promised": -1.0, "were promised": -1.0,
    "we were told": -0.6, "i was told": -0.6, "killing me": -2.0, "on and off": -1.0,
    "fraud alert": -0.3, "fraud team": 0.0, "fraud department": 0.0, "loyalty points": 0.0,
    "be back": 1.5, "come back": 1.0, "coming back": 1.0, "well kept": 1.5, "well looked after": 2.0,
    "went smoothly": 2.0, "sorted it": 1.5, "sorted out": 1.2, "in no time": 1.5,
    "much appreciated": 2.0, "so grateful": 2.2, "charged me twice": -2.5, "billed twice": -2.5,
    "double billed": -2.5, "no one called": -2.0, "nobody called": -2.0, "no call back": -2.0,
    "no callback": -2.0, "no follow up": -1.8, "no follow-up": -1.8,
    "never arrived": -2.0, "never came": -1.8, "never showed": -2.0, "hasn't arrived": -1.8,
    "has not arrived": -1.8, "not arrived": -1.8, "arrived early": 1.2, "arrived broken": -2.0,
    "without asking": -1.5, "without warning": -1.8, "without notice": -1.8, "without any notice": -2.0,
    "without any warning": -2.0, "no notice": -1.5, "no warning": -1.5, "in circles": -1.8,
    "no way to": -1.5, "no human": -1.5, "from a script": -1.2, "nobody answers": -2.0,
    "no one answers": -2.0, "nobody picks up": -2.0, "never picks up": -2.0, "no one picks up": -2.0,
    "whole day": -0.8, "whole morning": -0.8, "wasted my": -2.0, "no apology": -2.0,
    "no compensation": -1.8, "no refund": -2.0, "not refunded": -2.0, "never refunded": -2.0,
})
EN_TERMS.update(_terms("impossible maze smashed swallowed unreachable", -1.5))

EN_NEGATORS: dict[str, str] = {t: NEG for t in (
    "not no never nothing nobody none neither nor without cannot cant can't dont don't "
    "doesnt doesn't didnt didn't isnt isn't wasnt wasn't arent aren't werent weren't "
    "wont won't wouldnt wouldn't couldnt couldn't shouldnt shouldn't havent haven't hasnt "
    "hasn't hadnt hadn't aint ain't hardly barely scarcely lacks lacked").split()}
EN_NEGATORS.update({"not at all": NEG_STRONG, "not even": NEG_STRONG, "by no means": NEG_STRONG,
                    "far from": NEG_STRONG, "never ever": NEG_STRONG})

EN_MODIFIERS: dict[str, float] = {
    "very": 1.3, "really": 1.3, "so": 1.3, "extremely": 1.7, "super": 1.5, "incredibly": 1.6,
    "absolutely": 1.6, "totally": 1.5, "completely": 1.5, "utterly": 1.7, "too": 1.3,
    "most": 1.5, "such": 1.3, "quite": 1.1, "highly": 1.4, "truly": 1.4, "especially": 1.3,
    "particularly": 1.3, "exceptionally": 1.6, "terribly": 1.5, "awfully": 1.5, "seriously": 1.2,
    "insanely": 1.6, "ridiculously": 1.6, "beyond": 1.4, "even": 1.1, "more": 1.1, "much": 1.2,
    "way": 1.2, "real": 1.2, "freaking": 1.5, "fucking": 1.7, "damn": 1.4, "very very": 1.6,
    "slightly": 0.5, "somewhat": 0.6, "a bit": 0.6, "a little": 0.6, "a little bit": 0.5,
    "kind of": 0.6, "kinda": 0.6, "sort of": 0.6, "sorta": 0.6, "fairly": 0.8, "rather": 0.9,
    "mildly": 0.5, "bit": 0.6, "marginally": 0.5, "partly": 0.6, "almost": 0.8,
}
EN_CONTRAST = "but however unfortunately yet except although though nevertheless nonetheless sadly".split()
EN_CONCESSIVE = "although though despite while whilst albeit".split()
# "although" / "though" at the start of a clause are concessive; anywhere else contrastive.

# VADER entries we do not trust for customer feedback: brand names, politeness
# formulas, domain nouns ("care", "support", "credit", "safety"), slang used
# sarcastically, and words we treat as modifiers/negators ourselves.
VADER_EXCLUDE = frozenset((
    "united no help please like want number yes sure care well pay hope miss free credit chance "
    "gt pls plz friend friends lol lmao haha hahaha hoping yeah yep joke safety apology wish "
    "award super reach giving pretty hopefully fun huge helping original treat true mia l "
    "support luck top ready excited clear god allow kidding party worries won win accept "
    "fyi security serious loyal share save matter sorry leave hard empty cut drop hug hugs "
    "ha hah lmfao rofl xd spirit play playing cute heart hearts whatever please glad "
    "assistance assist certain certainly reward rewards upgrade upgraded priority "
    "number agree care cared caring fine okay ok stop stopped stops charged "
    "alert alerts loyalty loyal promise promised promises").split())
