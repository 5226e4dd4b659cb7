/**
 * Text the tokenizers are checked on: prose, contractions, numbers of every length, code, whitespace
 * runs and newlines, accents, non-Latin scripts (Chinese, Japanese, Korean, Arabic, Hindi, Russian,
 * Greek, Thai) and emoji (with joiners and skin tones).
 */
export const TOKENIZER_CORPUS: readonly string[] = [
  'Once upon a time, there was a little girl named Lily.',
  "I'm sure you'll see they've done it; he'd said we'RE fine, isn't it? DON'T",
  'Numbers: 1 12 123 1234 12345 3.14159 -42 1,000,000 2024-06-01 0x1F 1e-5',
  'function add(a, b) {\n  return a + b; // sum\n}\n\nconst x = add(1, 2);\n',
  'def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n    else:\n        return None\n',
  '   leading spaces, trailing spaces   \n\n\n  and\r\nwindows line ends\r\n',
  'Héllo wörld — naïve café, déjà vu, Ångström, façade, jalapeño.',
  '你好，世界！今天天气很好。我们去公园散步吧。',
  '日本語のテキスト：東京タワーは高いです。カタカナとひらがな。',
  '안녕하세요, 세계! 한국어 문장입니다.',
  'مرحبا بالعالم، هذه جملة عربية.',
  'नमस्ते दुनिया, यह हिंदी वाक्य है।',
  'Привет, мир! Это предложение на русском языке.',
  'Γειά σου Κόσμε, ελληνικά γράμματα.',
  'สวัสดีชาวโลก ภาษาไทย',
  'Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🎉🎉🎉',
  'URLs and emails: https://example.com/a?b=c&d=e user@example.org #hashtag @mention',
  'Mixed123abc ABC-def_ghi CamelCaseWord snake_case_word kebab-case-word',
  '<html><body><p class="x">Tags & entities &amp; &lt;</p></body></html>',
  '$$ \\frac{a}{b} = \\sum_{i=0}^{n} x_i^2 $$',
  '',
  ' ',
  '\n',
  'a',
];
