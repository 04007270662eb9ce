u0		tt000		1		actor music story doctor school code place . <sssss> a song love .
u1		tt001		8		a price doctor phone music screen . <sssss> phone plot the book actor .
u2		tt002		5		price code code game doctor book ! <sssss> the story vote the !
u3		tt003		2		plot book the staff book movie vote . <sssss> a book story !
