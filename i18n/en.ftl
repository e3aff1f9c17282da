# segattn's UI in English. Every message here has its twin in fr.ftl (a test checks it).

## The window's top bar
view-segment = Segment
view-attention = Attention
view-encodings = Positional encodings
models-button = Models…
theme-light = Light theme
theme-dark = Dark theme
language = Language

## Attention view
attn-mode-head = head
attn-mode-mean = mean of heads
attn-mode-max = max of heads
attn-mode-rollout = rollout
model-picker = model
model-none = none
model-more = More: Models window (open a folder or download).
text-label = Text:
text-hint = Type a sentence
text-empty = Type a sentence.
text-truncated = The text was truncated to { $kept } of its { $total } tokens (the model's maximum).
running-model = running the model…
axis-query = word that looks (query)
axis-key = word looked at (key)
cell-value = { $from } to { $to }: { $value }
cell-masked = { $from } to { $to }: masked (a causal model cannot see later tokens)
steps-follow-head = The map shows the { $mode }; the steps follow head { $head } (one head's computation).
steps-computing = computing the head's steps…
grid-title = All layers × heads (click one):
grid-cell = Layer { $layer } head { $head }
slider-layer = layer
slider-head = head
show = show
merge-words = merge subwords into words
word-picker = word
word-position = { $word } : position { $position }
word-position-hover = Open the Positional encodings view on this position
head-view = head view (lines)
step-view = step by step
step-view-hover = One head's computation for the chosen word, from the weights
colormap = colormap
nothing-to-export = nothing to export yet
wrote-file = wrote { $path }

## The lesson: bars and captions
bars-title = What “{ $word }” looks at
bar-masked = { $word } : masked
caption-head = Layer { $layer }, head { $head }
caption-mean = Layer { $layer }, mean of its heads
caption-max = Layer { $layer }, largest of its heads
caption-rollout = Rollout up to layer { $layer }
caption-words = { $what }: each row is a word that looks, each column a word it looks at
caption-tokens = { $what }: each row is a token that looks, each column a token it looks at
caption-sums = {" "}(each row sums to 1)
caption-causal = ; a causal model sees no later word (the masked triangle)

## One head, step by step
steps-title = One head, step by step: layer { $layer }, head { $head }, token “{ $token }” (position { $position })
steps-query = 1. Query q of “{ $token }”: { $dim } numbers { $vector }
steps-explain = 2. Each token's key k. 3. The dot product q·k. 4. Divided by √{ $dim } = { $root }. 5. The softmax of the column before turns the scores into weights that sum to 1
steps-explain-masked = ; later tokens are masked (−∞ before the softmax, 0 after): a causal model cannot see them
steps-col-token = token
steps-col-key = key k (first numbers)
steps-col-softmax = softmax
steps-masked = masked
steps-output = 6. Output = Σ softmax × v, the weighted sum of the tokens' values: { $vector }
steps-check = The softmax column is row “{ $token }” of head { $head }'s map (largest difference { $gap }).

## Tokenizers side by side
tokenizers-title = Tokenizers side by side
tokenizers-explain = A tokenizer keeps the words of its vocabulary whole and cuts the others into known pieces: ## continues a word (WordPiece), ▁ and Ġ start one (SentencePiece, byte-level BPE).
tokenizers-busy = tokenizing…
tokenizers-none = No text model found: open or download one in the Models window.
tokenizers-count = { $model }: { $count } tokens

## Positional encodings view
enc-kind-sinusoidal = sinusoidal
enc-kind-learned = learned (text model)
enc-kind-rotary = rotary (RoPE)
enc-kind-sam = SAM point encoding
enc-positions = positions
enc-dims = dimensions
enc-head-size = head size
enc-base = base
enc-sam-cells = Each of the 64 × 64 grid cells encoded as SAM's prompt encoder encodes a point.
enc-similarity = position × position cosine similarity
enc-need-text = Load a text model (Models window) to see its learned position table.
enc-need-sam = Load a SAM model (Models window) to see its point encoding.
computing = computing…
enc-skipped-rows = Rows 0–{ $last } of the model's table are never used: RoBERTa-style positions start after the padding index ({ $last }). Position 0 here is table row { $first }, the first token's.
enc-outlined = Position { $row } outlined (the word picked in the Attention view).
enc-clear = clear
enc-hover-pair = positions { $a } and { $b }: { $value }
enc-hover-cell = position { $row }, dimension { $col }: { $value }
enc-rope-decay = Relative-distance decay of q·k for constant vectors:
enc-curves = curves of dimensions:
enc-curve = dim { $dim }
