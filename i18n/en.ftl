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

## First-run panels
need-sam-title = Segment Anything needs a model
need-sam-why = segattn runs SAM on this computer. MobileSAM is small and the fastest; SAM ViT-B, ViT-L and ViT-H are larger and more precise (Models window).
need-sam-open = Open a SAM checkpoint…
need-text-title = The Attention view needs a text model
need-text-why = all-MiniLM-L6-v2 is a small BERT (6 layers × 12 heads); GPT-2 shows a causal model; DistilCamemBERT reads French (Models window). Any BERT, RoBERTa, XLM-RoBERTa, CamemBERT or GPT-2 folder from the Hugging Face Hub works.
need-text-open = Open a model folder…
downloading = Downloading { $model }…
cancel-download = Cancel download
looking-for-models = Looking for models on this computer…
loading-for = Loading { $model }… { $seconds } s
cancel = Cancel
last-load-failed = The last model did not load: { $why }
download-size = Download { $model } ({ $mb } MB)
download-from = from the Hugging Face Hub ({ $repo }) into its cache
offline-hint = Without a network, weights/README.md says which files to put where; the Models window lists where segattn looks.

## Status bar
status-formats = SAM encoder { $dtype }, rest f32
status-device-hover = where the models run, and in which floating-point format
status-sam = SAM: { $model }
status-text = text: { $model }
status-times = encode { $encode } · click { $click } · forward { $forward }
status-times-hover = click: from the pointer event to the mask on screen; SAM's prompt encoder and mask decoder took { $decode } of it
status-error = Error: { $message }

## Models window
models-title = Models
models-sam = Segment Anything
models-text = Text model
models-loaded = loaded: { $model }
models-loading = loading { $model }…
models-cancel-loading = Cancel loading
models-open-sam = Open SAM checkpoint…
models-open-text = Open model folder…
models-found = Found on this computer:
models-sam-names = SAM file names looked for: { $names }
models-text-folder = A text model is a Hugging Face folder with config.json, tokenizer.json and model.safetensors, e.g. weights/all-MiniLM-L6-v2 or weights/gpt2.
models-looked-for = Looked for, in order:
models-download-title = Download from the Hugging Face Hub
models-download = Download { $model }
models-download-about = { $repo }, about { $mb } MB
models-files-go = Files go to the Hugging Face cache (HF_HOME), where segattn also looks. Without a network, weights/README.md says which files to put where.
cache-title = Embedding cache
cache-keep = Keep image embeddings on disk (an image seen before is ready at once)
cache-bound = GB at most (least recently used go first)
cache-usage = { $entries ->
    [one] { $entries } embedding kept
   *[other] { $entries } embeddings kept
}, { $mb } MB used
cache-measuring = measuring…
cache-clear = Clear the cache
cache-clear-hover = Deletes every kept embedding; images are encoded again when next opened
cache-none = No cache folder (set SEGATTN_CACHE_DIR or HOME).

## Status-bar messages
msg-loading = loading { $path }…
msg-download-running = a download is already running
msg-downloading = downloading { $model }…
msg-download-failed = download { $model }: { $message }
msg-download-offline = download { $model }: { $message } (without a network, see weights/README.md for where to put the files)
msg-download-cancelled = download of { $model } cancelled; it resumes where it stopped next time
msg-connecting = connecting…
msg-loaded-in = { $model } loaded in { $ms } ms
msg-loaded = { $model } loaded
msg-loading-cancelled = loading cancelled
msg-task-failed = { $task }: { $message }
msg-sam-crashed = SAM stopped with an internal error while { $task } ({ $message }); it started again
msg-text-crashed = the text model stopped with an internal error while { $task } ({ $message }); it started again
msg-internal-error = an internal error while { $task }
msg-everything = everything: { $masks } masks in { $seconds } s
msg-hover-on = hover preview on
msg-hover-off = hover preview off
msg-save-failed = cannot save the annotations: { $message }
task-load-sam = loading the SAM model
task-encode = encoding the image
task-predict = predicting the mask
task-everything = segmenting everything
task-preencode = encoding the next image
task-load-text = loading the text model
task-run-text = running the text model
task-steps = computing the head's steps

## Segment view: image and prompt
seg-image = Image
seg-open-image = Open image…
seg-open-folder = Open folder…
seg-open-folder-hover = Annotate a folder of images: objects are saved in it as COCO
seg-sample = Sample: { $name }
seg-reading-folder = reading the folder…
seg-decoding = decoding { $name }…
seg-encoding = encoding… { $seconds } s
seg-encoded = image encoded in { $ms } ms: click to segment
seg-encoded-cached = embedding read from the disk cache in { $ms } ms: click to segment
seg-encoding-cancelled = encoding cancelled
seg-encode = Encode
seg-not-encoded = not encoded: { $why }
seg-waiting-model = waiting for a SAM model
seg-prompt = Prompt
seg-prompt-help = Left click: foreground point. Right click: background point. Drag: box.
seg-zoom = Zoom { $percent }% (scroll; middle-drag pans)
seg-fit = Fit
seg-undo = Undo
seg-redo = Redo
seg-clear = Clear
seg-hover-preview = Preview the mask under the pointer
seg-multimask = 3 candidate masks
seg-refine = Refine each click with the previous mask
seg-refine-hover = The chosen candidate's low-res logits go to the next click as SAM's mask_input, as the official predictor refines a mask (undo brings back the input each step had)
seg-opacity = mask opacity

## Segment view: candidates, outline, labels
seg-candidates = Candidates
seg-stab = stab { $value }
seg-candidate = Candidate { $n } (IoU { $iou }, stability { $stability })
seg-add-object = Add object
seg-add-object-hover = Keep this mask and start a new object (Enter)
seg-outline = Polygon outline
seg-simplify = simplify (px)
seg-simplify-hover = Douglas–Peucker tolerance: no border pixel is farther from the polygon. The COCO (polygons), YOLO and LabelMe exports use it.
seg-vertices = { $vertices } vertices in { $parts ->
    [one] { $parts } part
   *[other] { $parts } parts
}
seg-holes = , { $holes } hole(s): lost in YOLO, LabelMe and COCO polygons
seg-tracing = tracing the outline…
seg-labels = Labels
seg-next-label = The next object's label

## Segment view: labels, objects, export, decoder attention
seg-remove = Remove
seg-remove-hover = Remove this label
seg-new-label = label { $n }
seg-add-label = Add label
seg-objects = Objects
seg-object-area = { $area } px
seg-edit = Edit
seg-edit-hover = Add or subtract masks, fill holes, remove small parts
seg-delete = Delete
seg-export = Export
seg-annotations-of = Annotations of
seg-all-objects = all objects
seg-chosen-mask = the chosen mask
seg-coco-shape = COCO segmentation
seg-coco-rle = RLE (exact)
seg-coco-auto = polygons, RLE where holes
seg-coco-polygons = polygons (holes lost)
seg-coco-hover = COCO polygons cannot carry holes: an object with holes goes as RLE unless polygons are forced.
seg-export-mask = Mask PNG…
seg-export-cutout = Cut-out PNG…
seg-export-coco = COCO JSON…
seg-export-yolo = YOLO txt…
seg-export-labelme = LabelMe JSON…
seg-writing = writing…
seg-sam-looked = What SAM looked at
seg-overlay-attention = Overlay decoder attention
seg-attn-layer = layer
seg-attn-head = head
seg-attn-token = token
seg-attn-mean = mean of heads
seg-attn-head-n = head { $head }
seg-layer-final = final: tokens to image
seg-layer-block = block { $block }: tokens to image
seg-token-object = object-score token
seg-token-iou = IoU token
seg-token-mask = mask token { $index }
seg-token-point-fg = point { $n } (fg)
seg-token-point-bg = point { $n } (bg)
seg-token-padding = padding point
seg-token-corner = box corner { $n }

## Segment view: everything mode
ev-title = Everything
ev-points-per-side = points per side
ev-min-iou = min predicted IoU
ev-min-stability = min stability
ev-more = More parameters
ev-progress = points { $points }/{ $points_total } · crops { $crops }/{ $crops_total } · { $seconds } s
ev-cancel = Cancel everything
ev-run = Segment everything
ev-run-hover = SAM's automatic mask generator on a grid of points
ev-last-run = last run: { $masks } masks in { $seconds } s
ev-keep-all = Keep all
ev-discard-all = Discard all
ev-mask = mask { $n }
ev-scores = IoU { $iou } · stab { $stability }
ev-keep = Keep
ev-drop = Drop
ev-drop-hover = Delete this mask
ev-points-per-batch = points per batch
ev-stability-offset = stability offset
ev-box-nms = box NMS IoU
ev-crop-layers = crop layers
ev-crop-nms = crop NMS IoU
ev-crop-overlap = crop overlap ratio
ev-crop-downscale = crop points downscale
ev-min-area = min region area (px)
ev-defaults = Official defaults
ev-defaults-tip = The official generator's values: SamAutomaticMaskGenerator (minimum IoU 0.88), or SAM2AutomaticMaskGenerator for SAM 2.1 models (0.8)

## Segment view: shortcuts and folder
key-left-click = Left click
key-right-click = Right click
key-drag = Drag
key-scroll = Scroll
key-middle-drag = Middle drag
key-enter = Enter
key-space = Space
do-foreground = foreground point
do-background = background point
do-box = box
do-zoom = zoom around the pointer
do-pan = pan
do-keep = keep the mask as an object
do-undo = undo the last prompt
do-redo = redo
do-hover = hover preview on / off
do-next = next image of the folder
do-previous = previous image of the folder
do-done = mark the image done / not done
shortcuts-title = Keyboard and mouse
folder-title = Folder: { $name }
folder-not-saved = not saved: { $message }
folder-saving = saving…
folder-saved = saved
folder-progress = { $done } of { $total } images done · { $saved } in { $file }
folder-ahead = encoding { $name } ahead…
folder-ahead-hover = The next image's embedding goes to the disk cache in the background, so opening it is instant; clicks here come first
folder-previous = Previous (A)
folder-next = Next (D)
folder-next-not-done = Next not done
folder-next-not-done-hover = The next image without a done mark
folder-all-done = every image of the folder is done
folder-close = Close folder
folder-done = This image is done
folder-done-hover = Space. Keeping the first object marks it done.
folder-image-row = { $image } · { $objects ->
    [one] { $objects } object
   *[other] { $objects } objects
}
folder-image-done = {" "}· done
folder-export = Export the folder:
folder-export-coco-hover = One COCO instances file, shaped as the COCO export's menu says
folder-export-yolo-hover = A label file per image and data.yaml, in a folder you pick
folder-export-labelme-hover = A LabelMe JSON beside each image

## Segment view: mask editing and canvas
edit-union = Add the chosen mask
edit-difference = Subtract the chosen mask
edit-fill-holes = Fill holes
edit-remove-small = Remove parts under { $px } px
edit-keep-largest = Keep the largest part
edit-nothing-changed = { $op }: nothing changed
edit-need-mask = Click on the image for a mask first
edit-busy = editing…
edit-remove-under = Remove parts under
edit-undo = Undo edit
edit-redo = Redo edit
canvas-empty = Open an image (or drop one here), or pick a sample on the left.

## Segment view: messages
seg-folder-opened = folder { $name }: { $images } images, { $done } done
ev-cancelled = everything cancelled

## Positional encodings: side by side
enc-beside = beside the sinusoidal table of the same size
enc-beside-learned = learned (the model's weights)
enc-beside-sinusoidal = sinusoidal (the formula, base 10000)

## Train view
view-train = Train
train-heading = Train a tiny transformer
train-intro = A small transformer learns a task on this computer. Watch its attention go from the scattered rows of random weights to the pattern that solves the task.
train-task = Task
train-task-reverse = Reverse 8 digits
train-task-copy = Copy with an offset of 2
train-task-sort = Sort 8 digits
train-task-induction = Induction (repeated sequence)
train-task-sentences = Next word of the lesson's sentences
train-hint-reverse = Look for an anti-diagonal: position i looks at position 7 − i.
train-hint-copy = Look for a diagonal shifted two cells to the left: each digit looks two back.
train-hint-sort = Look for each output position finding the digit of its rank, wherever it stands.
train-hint-induction = Two layers: one head looks at the previous token, then a head of layer 1 looks at the token after the earlier occurrence of the current one.
train-hint-sentences = No single right pattern: watch each word learn which earlier words predict the next one.
train-layers = layers
train-heads = heads
train-width = Width
train-positions = Positions
train-pos-learned = learned table
train-pos-sinusoidal = sinusoidal
train-pos-rope = rotary (RoPE)
train-lr = Learning rate
train-steps = Steps
train-seed = Seed
train-start = ▶ Train
train-pause = ⏸ Pause
train-resume = ▶ Resume
train-step = Step once
train-reset = Reset
train-save = Save the model…
train-open-attention = Open in the Attention view
train-open-attention-hover = Saves the model in segattn's data folder and loads it as the text model
train-empty = Choose a task and press Train.
train-state-running = training
train-state-paused = paused
train-state-finished = finished
train-step-of = step { $step } / { $total }
train-accuracy = held-out accuracy { $accuracy }
train-score = attention score { $score } (layer { $layer }, head { $head })
train-seconds = { $seconds } s
train-loss = training loss
train-held-out-loss = held-out loss
train-accuracy-curve = held-out accuracy
train-score-curve = attention score
train-grid-caption = Every layer and head on the first held-out sequence, at step { $step }; click one to see it large.
train-head-caption = Layer { $layer }, head { $head }: each row is a token that looks, its colours where its attention goes.
train-finished = training done: { $steps } steps, held-out accuracy { $accuracy }, { $seconds } s
train-saved = model saved to { $path }
train-failed = training failed: { $message }
status-train = training { $speed } steps/s
enc-model-rope = This model has no position table: its positions are rotary (RoPE), each head's queries and keys turned by an angle that grows with the position. Pick RoPE above to see the angles.
enc-model-sinusoidal = This model adds the fixed sinusoidal table (not learned): the picture is the formula's, at the model's width.

## Errors, from the models, the workers and the exports
err-read-file = cannot read { $file } ({ $detail })
err-write-file = cannot write { $file } ({ $detail })
err-not-checkpoint = not a usable checkpoint ({ $reason }): { $file }
err-unsafe-pickle = refusing to load: the pickle references `{ $what }`, which is not tensor data: { $file }
err-missing-tensor = tensor `{ $name }` is missing from { $file }
err-tensor-shape = tensor `{ $name }` has shape { $got }, expected { $expected }, in { $file }
err-corrupt-tensor = tensor `{ $name }` is unreadable ({ $reason }) in { $file }
err-image-format = not a supported image (PNG, JPEG, GIF, BMP, TIFF, WebP): { $file }
err-image-empty = the image is empty ({ $width }x{ $height } pixels): { $file }
err-image-too-large = the image is too large: { $width }x{ $height } is { $megapixels } megapixels, over the { $limit } megapixel limit: { $file }
err-image-truncated = the image file is truncated: its data ends before the image does: { $file }
err-image-decode = cannot decode image ({ $reason }): { $file }
err-not-model-folder = not a model folder: { $dir }
err-model-folder-lacks = the model folder lacks { $name }: { $dir }
err-unsupported-model-type = unsupported model_type `{ $name }`; supported: { $supported }
err-no-model-type = no `model_type`; supported: { $supported }
err-empty-text = the text is empty: type a sentence
err-no-known-tokens = the text has no tokens this model knows
err-annotation-file = the annotation file cannot be read ({ $detail })
err-nothing-to-export = nothing to export: { $reasons }
err-no-object = no object (keep or select a mask first)
err-data-yaml = cannot read the class names of data.yaml: { $detail }
err-no-mask = no mask to export: click on the image first
err-no-image = no image is open
err-earlier-save = an earlier save stopped with an internal error
err-cancelled = cancelled
err-not-encoded = the image is not encoded yet
err-no-sam-model = no SAM model is loaded: open or download one in the Models window
err-no-text-model = no text model is loaded: open a model folder in the Models window
err-worker-busy = the worker is busy; try again
err-worker-stopped = the worker has stopped
notice-object = { $image } object { $n } ({ $label })
notice-size = { $object }: its mask is { $mw }×{ $mh }, the image { $iw }×{ $ih }; left out
notice-empty = { $object }: its mask is empty; left out
notice-too-thin = { $object }: too thin for a polygon; left out
notice-thin-parts = { $object }: { $n ->
    [one] { $n } part
   *[other] { $n } parts
} too thin for a polygon left out
notice-holes = { $object }: { $n ->
    [one] { $n } hole
   *[other] { $n } holes
} lost in { $format } polygons
notice-lines = { $object }: { $n } separate parts, one line each
wrote-file-note = wrote { $path } (note: { $note })
wrote-file-notes = wrote { $path } (note: { $note }; and { $more } more)
folder-wrote-coco = { $path }: { $objects } objects on { $images } images
folder-wrote-yolo = { $files } label files and data.yaml in { $dir }
folder-wrote-labelme = { $files } LabelMe files beside the images in { $dir }
edit-busy = an edit is still running
edit-err-no-other = choose a mask first (click on the image)
edit-err-size = the masks differ in size ({ $w }×{ $h } and { $ow }×{ $oh })
edit-err-empty = that would leave the object empty
folder-no-image = no image in the folder { $dir }
folder-set-aside = { $why }; it was moved to { $path }
folder-more-notices = … and { $n } more
folder-skipped-no-image = annotation { $n }: no such image; left out
folder-skipped = { $image }, annotation { $n }: { $why }; left out
folder-hidden-objects = { $image }: { $n ->
    [one] { $n } stored object is
   *[other] { $n } stored objects are
} { $w }×{ $h }, the image { $width }×{ $height } (the file changed?): kept in the annotation file, not shown

## Accessible names of pictures (screen readers, UI tests)
a11y-head-view = Head view
a11y-image-canvas = Image canvas
a11y-attention-heatmap = Attention heatmap
a11y-encoding-heatmap = Encoding heatmap
a11y-sinusoidal-heatmap = Sinusoidal heatmap
