u0		tt000		1		code screen love . <sssss> food actor actor team school story staff . <sssss> vote book money screen movie ?
u1		tt001		8		music money song doctor music place ! <sssss> place food actor price phone place movie .
u2		tt002		5		song love place screen . <sssss> song phone love the love love doctor . <sssss> plot place story . <sssss> love love code vote screen vote plot code .
u3		tt003		2		phone food a love price ! <sssss> the song music food book food . <sssss> game game movie book book ?
u4		tt004		9		team school screen ? <sssss> plot screen money the .
u5		tt005		6		story love love actor price story service . <sssss> food place love ? <sssss> the movie music .
u6		tt006		3		vote movie book book doctor vote music ? <sssss> place the staff place plot actor food food .
u7		tt007		10		music school school code money song ? <sssss> school love love .
u8		tt008		7		actor code money song . <sssss> code game song game doctor service food game ? <sssss> song staff staff . <sssss> school love staff code love love .
u9		tt009		4		place the a ? <sssss> actor staff staff .
