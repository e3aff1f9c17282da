# L'interface de segattn en français. Chaque message a son jumeau dans en.ftl (un test le vérifie).

## La barre du haut
view-segment = Segmenter
view-attention = Attention
view-encodings = Encodages de position
models-button = Modèles…
theme-light = Thème clair
theme-dark = Thème sombre
language = Langue

## Vue Attention
attn-mode-head = tête
attn-mode-mean = moyenne des têtes
attn-mode-max = maximum des têtes
attn-mode-rollout = propagation (rollout)
model-picker = modèle
model-none = aucun
model-more = Plus : fenêtre Modèles (ouvrir un dossier ou télécharger).
text-label = Texte :
text-hint = Tapez une phrase
text-empty = Tapez une phrase.
text-truncated = Le texte a été coupé à { $kept } de ses { $total } jetons (le maximum du modèle).
running-model = le modèle calcule…
axis-query = mot qui regarde (requête)
axis-key = mot regardé (clé)
cell-value = { $from } vers { $to } : { $value }
cell-masked = { $from } vers { $to } : masqué (un modèle causal ne voit pas les mots suivants)
steps-follow-head = La carte montre la { $mode } ; les étapes suivent la tête { $head } (le calcul d'une seule tête).
steps-computing = calcul des étapes de la tête…
grid-title = Toutes les couches × têtes (cliquez-en une) :
grid-cell = Couche { $layer } tête { $head }
slider-layer = couche
slider-head = tête
show = afficher
merge-words = fusionner les sous-mots en mots
word-picker = mot
word-position = { $word } : position { $position }
word-position-hover = Ouvrir la vue Encodages de position sur cette position
head-view = vue des têtes (lignes)
step-view = pas à pas
step-view-hover = Le calcul d'une tête pour le mot choisi, à partir des poids
colormap = palette
nothing-to-export = rien à exporter pour l'instant
wrote-file = { $path } écrit

## La leçon : barres et légendes
bars-title = Ce que « { $word } » regarde
bar-masked = { $word } : masqué
caption-head = Couche { $layer }, tête { $head }
caption-mean = Couche { $layer }, moyenne de ses têtes
caption-max = Couche { $layer }, maximum de ses têtes
caption-rollout = Propagation jusqu'à la couche { $layer }
caption-words = { $what } : chaque ligne est un mot qui regarde, chaque colonne un mot qu'il regarde
caption-tokens = { $what } : chaque ligne est un jeton qui regarde, chaque colonne un jeton qu'il regarde
caption-sums = {" "}(chaque ligne somme à 1)
caption-causal = {" "}; un modèle causal ne voit aucun mot suivant (le triangle masqué)

## Une tête, pas à pas
steps-title = Une tête, pas à pas : couche { $layer }, tête { $head }, jeton « { $token } » (position { $position })
steps-query = 1. Requête q de « { $token } » : { $dim } nombres { $vector }
steps-explain = 2. La clé k de chaque jeton. 3. Le produit scalaire q·k. 4. Divisé par √{ $dim } = { $root }. 5. Le softmax de la colonne précédente change les scores en poids dont la somme vaut 1
steps-explain-masked = {" "}; les jetons suivants sont masqués (−∞ avant le softmax, 0 après) : un modèle causal ne les voit pas
steps-col-token = jeton
steps-col-key = clé k (premiers nombres)
steps-col-softmax = softmax
steps-masked = masqué
steps-output = 6. Sortie = Σ softmax × v, la somme des valeurs des jetons pondérée : { $vector }
steps-check = La colonne softmax est la ligne « { $token } » de la carte de la tête { $head } (plus grand écart { $gap }).

## Les tokeniseurs côte à côte
tokenizers-title = Les tokeniseurs côte à côte
tokenizers-explain = Un tokeniseur garde entiers les mots de son vocabulaire et coupe les autres en morceaux connus : ## continue un mot (WordPiece), ▁ et Ġ en commencent un (SentencePiece, BPE sur octets).
tokenizers-busy = découpage…
tokenizers-none = Aucun modèle de texte trouvé : ouvrez-en ou téléchargez-en un dans la fenêtre Modèles.
tokenizers-count = { $model } : { $count } jetons

## Vue Encodages de position
enc-kind-sinusoidal = sinusoïdal
enc-kind-learned = appris (modèle de texte)
enc-kind-rotary = rotatif (RoPE)
enc-kind-sam = encodage des points de SAM
enc-positions = positions
enc-dims = dimensions
enc-head-size = taille de tête
enc-base = base
enc-sam-cells = Chacune des 64 × 64 cases de la grille encodée comme l'encodeur de requêtes de SAM encode un point.
enc-similarity = similarité cosinus position × position
enc-need-text = Chargez un modèle de texte (fenêtre Modèles) pour voir sa table de positions apprise.
enc-need-sam = Chargez un modèle SAM (fenêtre Modèles) pour voir son encodage des points.
computing = calcul…
enc-skipped-rows = Les lignes 0–{ $last } de la table du modèle ne servent jamais : les positions façon RoBERTa commencent après l'indice de remplissage ({ $last }). La position 0 est ici la ligne { $first } de la table, celle du premier jeton.
enc-outlined = Position { $row } encadrée (le mot choisi dans la vue Attention).
enc-clear = effacer
enc-hover-pair = positions { $a } et { $b } : { $value }
enc-hover-cell = position { $row }, dimension { $col } : { $value }
enc-rope-decay = Décroissance de q·k avec la distance relative, pour des vecteurs constants :
enc-curves = courbes des dimensions :
enc-curve = dim { $dim }

## Panneaux du premier lancement
need-sam-title = Segment Anything a besoin d'un modèle
need-sam-why = segattn fait tourner SAM sur cet ordinateur. MobileSAM est petit et le plus rapide ; SAM ViT-B, ViT-L et ViT-H sont plus gros et plus précis (fenêtre Modèles).
need-sam-open = Ouvrir un checkpoint SAM…
need-text-title = La vue Attention a besoin d'un modèle de texte
need-text-why = all-MiniLM-L6-v2 est un petit BERT (6 couches × 12 têtes) ; GPT-2 montre un modèle causal ; DistilCamemBERT lit le français (fenêtre Modèles). Tout dossier BERT, RoBERTa, XLM-RoBERTa, CamemBERT ou GPT-2 du Hugging Face Hub convient.
need-text-open = Ouvrir un dossier de modèle…
downloading = Téléchargement de { $model }…
cancel-download = Annuler le téléchargement
looking-for-models = Recherche de modèles sur cet ordinateur…
loading-for = Chargement de { $model }… { $seconds } s
cancel = Annuler
last-load-failed = Le dernier modèle n'a pas pu être chargé : { $why }
download-size = Télécharger { $model } ({ $mb } Mo)
download-from = depuis le Hugging Face Hub ({ $repo }) dans son cache
offline-hint = Sans réseau, weights/README.md dit quels fichiers mettre où ; la fenêtre Modèles liste où segattn cherche.

## Barre d'état
status-formats = encodeur SAM { $dtype }, reste f32
status-device-hover = où tournent les modèles, et dans quel format de nombres à virgule
status-sam = SAM : { $model }
status-text = texte : { $model }
status-times = encodage { $encode } · clic { $click } · passe { $forward }
status-times-hover = clic : de l'événement du pointeur au masque à l'écran ; l'encodeur de requêtes et le décodeur de masques de SAM en ont pris { $decode }
status-error = Erreur : { $message }

## Fenêtre Modèles
models-title = Modèles
models-sam = Segment Anything
models-text = Modèle de texte
models-loaded = chargé : { $model }
models-loading = chargement de { $model }…
models-cancel-loading = Annuler le chargement
models-open-sam = Ouvrir un checkpoint SAM…
models-open-text = Ouvrir un dossier de modèle…
models-found = Trouvés sur cet ordinateur :
models-sam-names = Noms de fichiers SAM cherchés : { $names }
models-text-folder = Un modèle de texte est un dossier Hugging Face avec config.json, tokenizer.json et model.safetensors, par exemple weights/all-MiniLM-L6-v2 ou weights/gpt2.
models-looked-for = Cherchés, dans l'ordre :
models-download-title = Télécharger depuis le Hugging Face Hub
models-download = Télécharger { $model }
models-download-about = { $repo }, environ { $mb } Mo
models-files-go = Les fichiers vont dans le cache Hugging Face (HF_HOME), où segattn cherche aussi. Sans réseau, weights/README.md dit quels fichiers mettre où.
cache-title = Cache des embeddings
cache-keep = Garder les embeddings des images sur le disque (une image déjà vue est prête tout de suite)
cache-bound = Go au plus (les moins récemment utilisés partent d'abord)
cache-usage = { $entries ->
    [one] { $entries } embedding gardé
   *[other] { $entries } embeddings gardés
}, { $mb } Mo utilisés
cache-measuring = mesure…
cache-clear = Vider le cache
cache-clear-hover = Supprime tous les embeddings gardés ; les images seront encodées de nouveau à leur prochaine ouverture
cache-none = Pas de dossier de cache (définissez SEGATTN_CACHE_DIR ou HOME).

## Messages de la barre d'état
msg-loading = chargement de { $path }…
msg-download-running = un téléchargement est déjà en cours
msg-downloading = téléchargement de { $model }…
msg-download-failed = téléchargement de { $model } : { $message }
msg-download-offline = téléchargement de { $model } : { $message } (sans réseau, weights/README.md dit où mettre les fichiers)
msg-download-cancelled = téléchargement de { $model } annulé ; il reprendra là où il s'est arrêté
msg-connecting = connexion…
msg-loaded-in = { $model } chargé en { $ms } ms
msg-loaded = { $model } chargé
msg-loading-cancelled = chargement annulé
msg-task-failed = { $task } : { $message }
msg-sam-crashed = SAM s'est arrêté sur une erreur interne pendant : { $task } ({ $message }) ; il a redémarré
msg-text-crashed = le modèle de texte s'est arrêté sur une erreur interne pendant : { $task } ({ $message }) ; il a redémarré
msg-internal-error = une erreur interne pendant : { $task }
msg-everything = tout segmenter : { $masks } masques en { $seconds } s
msg-hover-on = aperçu au survol activé
msg-hover-off = aperçu au survol désactivé
msg-save-failed = impossible d'enregistrer les annotations : { $message }
task-load-sam = chargement du modèle SAM
task-encode = encodage de l'image
task-predict = prédiction du masque
task-everything = segmentation de tout
task-preencode = encodage de l'image suivante
task-load-text = chargement du modèle de texte
task-run-text = passe du modèle de texte
task-steps = calcul des étapes de la tête

## Vue Segmenter : image et requête
seg-image = Image
seg-open-image = Ouvrir une image…
seg-open-folder = Ouvrir un dossier…
seg-open-folder-hover = Annoter un dossier d'images : les objets y sont enregistrés en COCO
seg-sample = Exemple : { $name }
seg-reading-folder = lecture du dossier…
seg-decoding = décodage de { $name }…
seg-encoding = encodage… { $seconds } s
seg-encoded = image encodée en { $ms } ms : cliquez pour segmenter
seg-encoded-cached = embedding lu dans le cache disque en { $ms } ms : cliquez pour segmenter
seg-encoding-cancelled = encodage annulé
seg-encode = Encoder
seg-not-encoded = non encodée : { $why }
seg-waiting-model = en attente d'un modèle SAM
seg-prompt = Requête
seg-prompt-help = Clic gauche : point de l'objet. Clic droit : point du fond. Glisser : boîte.
seg-zoom = Zoom { $percent } % (molette ; glisser avec le bouton du milieu déplace)
seg-fit = Ajuster
seg-undo = Annuler
seg-redo = Rétablir
seg-clear = Effacer
seg-hover-preview = Aperçu du masque sous le pointeur
seg-multimask = 3 masques candidats
seg-refine = Affiner chaque clic avec le masque précédent
seg-refine-hover = Les logits basse résolution du candidat choisi vont au clic suivant comme mask_input de SAM, comme le prédicteur officiel affine un masque (annuler rend l'entrée de chaque étape)
seg-opacity = opacité du masque

## Vue Segmenter : candidats, contour, étiquettes
seg-candidates = Candidats
seg-stab = stab. { $value }
seg-candidate = Candidat { $n } (IoU { $iou }, stabilité { $stability })
seg-add-object = Ajouter l'objet
seg-add-object-hover = Garder ce masque et commencer un nouvel objet (Entrée)
seg-outline = Contour polygonal
seg-simplify = simplifier (px)
seg-simplify-hover = Tolérance de Douglas–Peucker : aucun pixel du bord n'est plus loin du polygone. Les exports COCO (polygones), YOLO et LabelMe l'utilisent.
seg-vertices = { $vertices } sommets en { $parts ->
    [one] { $parts } partie
   *[other] { $parts } parties
}
seg-holes = , { $holes } trou(s) : perdus en YOLO, LabelMe et polygones COCO
seg-tracing = tracé du contour…
seg-labels = Étiquettes
seg-next-label = L'étiquette du prochain objet

## Vue Segmenter : étiquettes, objets, export, attention du décodeur
seg-remove = Retirer
seg-remove-hover = Retirer cette étiquette
seg-new-label = étiquette { $n }
seg-add-label = Ajouter une étiquette
seg-objects = Objets
seg-object-area = { $area } px
seg-edit = Modifier
seg-edit-hover = Ajouter ou soustraire des masques, boucher les trous, retirer les petites parties
seg-delete = Supprimer
seg-export = Exporter
seg-annotations-of = Annotations de
seg-all-objects = tous les objets
seg-chosen-mask = le masque choisi
seg-coco-shape = segmentation COCO
seg-coco-rle = RLE (exact)
seg-coco-auto = polygones, RLE s'il y a des trous
seg-coco-polygons = polygones (trous perdus)
seg-coco-hover = Les polygones COCO ne portent pas de trous : un objet troué part en RLE, sauf si les polygones sont imposés.
seg-export-mask = PNG du masque…
seg-export-cutout = PNG découpé…
seg-export-coco = JSON COCO…
seg-export-yolo = txt YOLO…
seg-export-labelme = JSON LabelMe…
seg-writing = écriture…
seg-sam-looked = Ce que SAM a regardé
seg-overlay-attention = Superposer l'attention du décodeur
seg-attn-layer = couche
seg-attn-head = tête
seg-attn-token = jeton
seg-attn-mean = moyenne des têtes
seg-attn-head-n = tête { $head }
seg-layer-final = finale : jetons vers l'image
seg-layer-block = bloc { $block } : jetons vers l'image
seg-token-object = jeton de score d'objet
seg-token-iou = jeton IoU
seg-token-mask = jeton de masque { $index }
seg-token-point-fg = point { $n } (objet)
seg-token-point-bg = point { $n } (fond)
seg-token-padding = point de remplissage
seg-token-corner = coin de boîte { $n }

## Vue Segmenter : tout segmenter
ev-title = Tout segmenter
ev-points-per-side = points par côté
ev-min-iou = IoU prédite minimale
ev-min-stability = stabilité minimale
ev-more = Plus de paramètres
ev-progress = points { $points }/{ $points_total } · découpes { $crops }/{ $crops_total } · { $seconds } s
ev-cancel = Annuler tout segmenter
ev-run = Tout segmenter
ev-run-hover = Le générateur automatique de masques de SAM sur une grille de points
ev-last-run = dernier passage : { $masks } masques en { $seconds } s
ev-keep-all = Tout garder
ev-discard-all = Tout jeter
ev-mask = masque { $n }
ev-scores = IoU { $iou } · stab. { $stability }
ev-keep = Garder
ev-drop = Jeter
ev-drop-hover = Supprimer ce masque
ev-points-per-batch = points par lot
ev-stability-offset = décalage de stabilité
ev-box-nms = IoU de NMS des boîtes
ev-crop-layers = couches de découpe
ev-crop-nms = IoU de NMS des découpes
ev-crop-overlap = recouvrement des découpes
ev-crop-downscale = réduction des points des découpes
ev-min-area = aire minimale d'une région (px)
ev-defaults = Valeurs officielles
ev-defaults-tip = Les valeurs du générateur officiel : SamAutomaticMaskGenerator (IoU minimale 0,88), ou SAM2AutomaticMaskGenerator pour les modèles SAM 2.1 (0,8)

## Vue Segmenter : raccourcis et dossier
key-left-click = Clic gauche
key-right-click = Clic droit
key-drag = Glisser
key-scroll = Molette
key-middle-drag = Glisser (bouton du milieu)
key-enter = Entrée
key-space = Espace
do-foreground = point de l'objet
do-background = point du fond
do-box = boîte
do-zoom = zoom autour du pointeur
do-pan = déplacer la vue
do-keep = garder le masque comme objet
do-undo = annuler la dernière requête
do-redo = rétablir
do-hover = aperçu au survol activé / désactivé
do-next = image suivante du dossier
do-previous = image précédente du dossier
do-done = marquer l'image faite / pas faite
shortcuts-title = Clavier et souris
folder-title = Dossier : { $name }
folder-not-saved = non enregistré : { $message }
folder-saving = enregistrement…
folder-saved = enregistré
folder-progress = { $done } images faites sur { $total } · { $saved } dans { $file }
folder-ahead = encodage de { $name } en avance…
folder-ahead-hover = L'embedding de l'image suivante part dans le cache disque en arrière-plan, pour que son ouverture soit immédiate ; les clics ici passent d'abord
folder-previous = Précédente (A)
folder-next = Suivante (D)
folder-next-not-done = Suivante pas faite
folder-next-not-done-hover = La prochaine image sans marque « faite »
folder-all-done = toutes les images du dossier sont faites
folder-close = Fermer le dossier
folder-done = Cette image est faite
folder-done-hover = Espace. Garder le premier objet la marque faite.
folder-image-row = { $image } · { $objects ->
    [one] { $objects } objet
   *[other] { $objects } objets
}
folder-image-done = {" "}· faite
folder-export = Exporter le dossier :
folder-export-coco-hover = Un fichier d'instances COCO, de la forme que dit le menu de l'export COCO
folder-export-yolo-hover = Un fichier d'étiquettes par image et data.yaml, dans un dossier que vous choisissez
folder-export-labelme-hover = Un JSON LabelMe à côté de chaque image

## Vue Segmenter : retouche des masques et image
edit-union = Ajouter le masque choisi
edit-difference = Soustraire le masque choisi
edit-fill-holes = Boucher les trous
edit-remove-small = Retirer les parties sous { $px } px
edit-keep-largest = Garder la plus grande partie
edit-nothing-changed = { $op } : rien n'a changé
edit-need-mask = Cliquez d'abord sur l'image pour obtenir un masque
edit-busy = retouche…
edit-remove-under = Retirer les parties sous
edit-undo = Annuler la retouche
edit-redo = Rétablir la retouche
canvas-empty = Ouvrez une image (ou déposez-en une ici), ou choisissez un exemple à gauche.

## Vue Segmenter : messages
seg-folder-opened = dossier { $name } : { $images } images, { $done } faites
ev-cancelled = tout segmenter annulé

## Encodages de position : côte à côte
enc-beside = à côté de la table sinusoïdale de même taille
enc-beside-learned = apprise (les poids du modèle)
enc-beside-sinusoidal = sinusoïdale (la formule, base 10000)

## Train view
view-train = Entraîner
train-heading = Entraîner un petit transformer
train-intro = Un petit transformer apprend une tâche sur cet ordinateur. Regardez son attention passer des lignes dispersées de poids aléatoires au motif qui résout la tâche.
train-task = Tâche
train-task-reverse = Inverser 8 chiffres
train-task-copy = Copier avec un décalage de 2
train-task-sort = Trier 8 chiffres
train-task-induction = Induction (séquence répétée)
train-task-sentences = Mot suivant des phrases de la leçon
train-hint-reverse = Cherchez une anti-diagonale : la position i regarde la position 7 − i.
train-hint-copy = Cherchez une diagonale décalée de deux cases vers la gauche : chaque chiffre regarde deux positions en arrière.
train-hint-sort = Cherchez chaque position de sortie qui trouve le chiffre de son rang, où qu'il soit.
train-hint-induction = Deux couches : une tête regarde le jeton précédent, puis une tête de la couche 1 regarde le jeton qui suivait l'occurrence précédente du jeton courant.
train-hint-sentences = Pas de motif unique : regardez chaque mot apprendre quels mots précédents annoncent le suivant.
train-layers = couches
train-heads = têtes
train-width = Largeur
train-positions = Positions
train-pos-learned = table apprise
train-pos-sinusoidal = sinusoïdales
train-pos-rope = rotatives (RoPE)
train-lr = Taux d'apprentissage
train-steps = Pas
train-seed = Graine
train-start = ▶ Entraîner
train-pause = ⏸ Pause
train-resume = ▶ Reprendre
train-step = Un pas
train-reset = Réinitialiser
train-save = Enregistrer le modèle…
train-open-attention = Ouvrir dans la vue Attention
train-open-attention-hover = Enregistre le modèle dans le dossier de données de segattn et le charge comme modèle de texte
train-empty = Choisissez une tâche et appuyez sur Entraîner.
train-state-running = entraînement
train-state-paused = en pause
train-state-finished = terminé
train-step-of = pas { $step } / { $total }
train-accuracy = exactitude sur l'ensemble de test { $accuracy }
train-score = score d'attention { $score } (couche { $layer }, tête { $head })
train-seconds = { $seconds } s
train-loss = perte d'entraînement
train-held-out-loss = perte sur l'ensemble de test
train-accuracy-curve = exactitude (test)
train-score-curve = score d'attention
train-grid-caption = Chaque couche et chaque tête sur la première séquence de test, au pas { $step } ; cliquez-en une pour l'agrandir.
train-head-caption = Couche { $layer }, tête { $head } : chaque ligne est un jeton qui regarde, ses couleurs montrent où va son attention.
train-finished = entraînement terminé : { $steps } pas, exactitude { $accuracy }, { $seconds } s
train-saved = modèle enregistré dans { $path }
train-failed = l'entraînement a échoué : { $message }
status-train = entraînement { $speed } pas/s
enc-model-rope = Ce modèle n'a pas de table de positions : ses positions sont rotatives (RoPE), les requêtes et les clés de chaque tête tournées d'un angle qui croît avec la position. Choisissez RoPE ci-dessus pour voir les angles.
enc-model-sinusoidal = Ce modèle ajoute la table sinusoïdale fixe (non apprise) : l'image est celle de la formule, à la largeur du modèle.

## Errors, from the models, the workers and the exports
err-read-file = impossible de lire { $file } ({ $detail })
err-write-file = impossible d'écrire { $file } ({ $detail })
err-not-checkpoint = ce n'est pas un checkpoint utilisable ({ $reason }) : { $file }
err-unsafe-pickle = chargement refusé : le pickle fait référence à `{ $what }`, qui n'est pas une donnée de tenseur : { $file }
err-missing-tensor = le tenseur `{ $name }` manque dans { $file }
err-tensor-shape = le tenseur `{ $name }` a la forme { $got } au lieu de { $expected }, dans { $file }
err-corrupt-tensor = le tenseur `{ $name }` est illisible ({ $reason }) dans { $file }
err-image-format = format d'image non pris en charge (PNG, JPEG, GIF, BMP, TIFF, WebP) : { $file }
err-image-empty = l'image est vide ({ $width }x{ $height } pixels) : { $file }
err-image-too-large = l'image est trop grande : { $width }x{ $height } font { $megapixels } mégapixels, au-delà de la limite de { $limit } mégapixels : { $file }
err-image-truncated = le fichier image est tronqué : ses données s'arrêtent avant la fin de l'image : { $file }
err-image-decode = impossible de décoder l'image ({ $reason }) : { $file }
err-not-model-folder = ce n'est pas un dossier de modèle : { $dir }
err-model-folder-lacks = il manque { $name } au dossier du modèle : { $dir }
err-unsupported-model-type = model_type `{ $name }` non pris en charge ; pris en charge : { $supported }
err-no-model-type = pas de `model_type` ; pris en charge : { $supported }
err-empty-text = le texte est vide : tapez une phrase
err-no-known-tokens = le texte n'a aucun token que ce modèle connaît
err-annotation-file = le fichier d'annotations est illisible ({ $detail })
err-nothing-to-export = rien à exporter : { $reasons }
err-no-object = aucun objet (gardez ou choisissez d'abord un masque)
err-data-yaml = impossible de lire les noms de classes de data.yaml : { $detail }
err-no-mask = aucun masque à exporter : cliquez d'abord sur l'image
err-no-image = aucune image n'est ouverte
err-earlier-save = un enregistrement précédent s'est arrêté sur une erreur interne
err-cancelled = annulé
err-not-encoded = l'image n'est pas encore encodée
err-no-sam-model = aucun modèle SAM n'est chargé : ouvrez-en ou téléchargez-en un dans la fenêtre Modèles
err-no-text-model = aucun modèle de texte n'est chargé : ouvrez un dossier de modèle dans la fenêtre Modèles
err-worker-busy = le calcul est occupé ; réessayez
err-worker-stopped = le calcul s'est arrêté
notice-object = { $image }, objet { $n } ({ $label })
notice-size = { $object } : son masque fait { $mw }×{ $mh }, l'image { $iw }×{ $ih } ; laissé de côté
notice-empty = { $object } : son masque est vide ; laissé de côté
notice-too-thin = { $object } : trop fin pour un polygone ; laissé de côté
notice-thin-parts = { $object } : { $n ->
    [one] { $n } partie trop fine pour un polygone laissée de côté
   *[other] { $n } parties trop fines pour un polygone laissées de côté
}
notice-holes = { $object } : { $n ->
    [one] { $n } trou perdu
   *[other] { $n } trous perdus
} dans les polygones { $format }
notice-lines = { $object } : { $n } parties séparées, une ligne chacune
wrote-file-note = { $path } écrit (remarque : { $note })
wrote-file-notes = { $path } écrit (remarque : { $note } ; et { $more } de plus)
folder-wrote-coco = { $path } : { $objects } objets sur { $images } images
folder-wrote-yolo = { $files } fichiers d'étiquettes et data.yaml dans { $dir }
folder-wrote-labelme = { $files } fichiers LabelMe à côté des images dans { $dir }
edit-busy = une modification est encore en cours
edit-err-no-other = choisissez d'abord un masque (cliquez sur l'image)
edit-err-size = les masques n'ont pas la même taille ({ $w }×{ $h } et { $ow }×{ $oh })
edit-err-empty = l'objet deviendrait vide
folder-no-image = aucune image dans le dossier { $dir }
folder-set-aside = { $why } ; il a été déplacé vers { $path }
folder-more-notices = … et { $n } de plus
folder-skipped-no-image = annotation { $n } : aucune image de ce nom ; laissée de côté
folder-skipped = { $image }, annotation { $n } : { $why } ; laissée de côté
folder-hidden-objects = { $image } : { $n ->
    [one] { $n } objet enregistré fait
   *[other] { $n } objets enregistrés font
} { $w }×{ $h }, l'image { $width }×{ $height } (le fichier a changé ?) : gardés dans le fichier d'annotations, pas affichés

## Accessible names of pictures (screen readers, UI tests)
a11y-head-view = Vue de la tête
a11y-image-canvas = Image à segmenter
a11y-attention-heatmap = Carte d'attention
a11y-encoding-heatmap = Carte des encodages
a11y-sinusoidal-heatmap = Carte sinusoïdale
