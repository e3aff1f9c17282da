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
